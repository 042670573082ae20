package kafka

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A process killed without leaving its consumer group stays a member until
// its session times out (10 s): the rebalance its restart asks for waits
// for it, and the stage consumes nothing meanwhile. So each stage keeps its
// group member id in a slot of the data dir (processid.go; a transactional
// stage's slot also keeps its transactional id), and its restart, which
// holds that slot only because the process before it died, removes that
// member from the group at once (LeaveGroup on its behalf, as
// `kafka-consumer-groups.sh --delete --members` would).

// memberFile is where slot keeps its process's group member id.
func memberFile(slot string) string { return slot + ".member" }

// rememberMember returns the assignment callback that keeps in the slot
// the member id cl holds in the group, with the host's name: a data dir
// copied to another host must not make that host's processes remove this
// one.
func rememberMember(slot string) func(cl *kgo.Client) {
	var last string // called one assignment at a time
	return func(cl *kgo.Client) {
		member, _ := cl.GroupMetadata()
		if slot == "" || member == "" || member == last {
			return
		}
		host, _ := os.Hostname()
		if os.WriteFile(memberFile(slot), []byte(host+" "+member+"\n"), 0o644) == nil {
			last = member
		}
	}
}

// deadMember returns the member id the process that held slot before this
// one kept there, or "". Read it before this process joins the group: from
// its first assignment on, the file holds this process's own id.
func deadMember(slot string) string {
	if slot == "" {
		return ""
	}
	b, err := os.ReadFile(memberFile(slot))
	if err != nil {
		return "" // none kept
	}
	host, _ := os.Hostname()
	kept := strings.Fields(string(b))
	if len(kept) != 2 || kept[0] != host {
		return ""
	}
	return kept[1]
}

// leaveDeadMember removes member (deadMember's) from group. A member
// already gone is not an error.
func leaveDeadMember(ctx context.Context, cl *kgo.Client, group, member string) error {
	if member == "" {
		return nil
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group, req.MemberID = group, member // MemberID for brokers before v3
	m := kmsg.NewLeaveGroupRequestMember()
	reason := "caracal: its process died; the process restarted in its place replaces it"
	m.MemberID, m.Reason = member, &reason
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	err = kerr.ErrorForCode(resp.ErrorCode)
	if err == nil && len(resp.Members) > 0 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	if errors.Is(err, kerr.UnknownMemberID) {
		return nil
	}
	return err
}
