package kafka

// ReleaseIDForTest gives up the consumer's kept transactional id as a
// killed process would (the kernel dropping its lock), leaving its open
// transaction open.
func (c *TxnConsumer) ReleaseIDForTest() { c.release() }

// MemberFileForTest is where the consumer keeps its group member id.
func (c *TxnConsumer) MemberFileForTest() string { return memberFile(c.slot) }

// MemberFileForTest is where the consumer keeps its group member id.
func (c *Consumer) MemberFileForTest() string { return memberFile(c.slot) }
