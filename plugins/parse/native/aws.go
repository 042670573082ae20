package native

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
)

func init() {
	register("AWS.ALB", parseALB)
	register("AWS.VPCFlow", parseVPCFlow)
	register("AWS.S3ServerAccess", parseS3ServerAccess)
	register("AWS.AuroraMySQLAudit", parseAuroraMySQLAudit)
}

// parseALB reads an Application Load Balancer access log line:
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html
func parseALB(m *Record, line, _ []byte) error {
	f, err := m.fields(line)
	if err != nil {
		return err
	}
	if len(f) < 12 {
		return fmt.Errorf("ALB: %d fields, want at least 12", len(f))
	}
	switch f[0] {
	case "http", "https", "h2", "grpcs", "ws", "wss": // a switch, not a map: no hashing
	default:
		return fmt.Errorf("ALB: unknown entry type %q (http, https, h2, grpcs, ws, wss)", f[0])
	}
	set(m, "type", f[0])
	set(m, "timestamp", f[1])
	set(m, "elb", f[2])
	ip, port := splitHostPort(f[3])
	set(m, "clientIp", ip)
	set(m, "clientPort", port)
	ip, port = splitHostPort(f[4])
	set(m, "targetIp", ip)
	set(m, "targetPort", port)
	set(m, "requestProcessingTime", f[5])
	set(m, "targetProcessingTime", f[6])
	set(m, "responseProcessingTime", f[7])
	set(m, "elbStatusCode", f[8])
	set(m, "targetStatusCode", f[9])
	set(m, "receivedBytes", f[10])
	set(m, "sentBytes", f[11])
	at := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	// "GET https://host:443/path?q HTTP/1.1"; "- - -" when unparsable.
	req, n := firstFields(at(12), m.plain)
	if n == 3 {
		set(m, "requestHttpMethod", req[0])
		set(m, "requestUrl", req[1])
		set(m, "requestHttpVersion", req[2])
	}
	set(m, "userAgent", at(13))
	set(m, "sslCipher", at(14))
	set(m, "sslProtocol", at(15))
	set(m, "targetGroupArn", at(16))
	set(m, "traceId", at(17))
	set(m, "domainName", at(18))
	set(m, "chosenCertArn", at(19))
	set(m, "matchedRulePriority", at(20))
	set(m, "requestCreationTime", at(21))
	setList(m, "actionsExecuted", at(22), ",")
	set(m, "redirectUrl", at(23))
	set(m, "errorReason", at(24))
	setList(m, "targetPortList", at(25), " ")
	setList(m, "targetStatusList", at(26), " ")
	set(m, "classification", at(27))
	set(m, "classificationReason", at(28))
	return nil
}

// VPC Flow Logs field names (as in a custom format's header line) and the
// schema's column for each.
var vpcFlowColumns = map[string]string{
	"version": "version", "account-id": "account", "interface-id": "interfaceId",
	"srcaddr": "srcAddr", "dstaddr": "dstAddr", "srcport": "srcPort", "dstport": "dstPort",
	"protocol": "protocol", "packets": "packets", "bytes": "bytes", "start": "start", "end": "end",
	"action": "action", "log-status": "status", "vpc-id": "vpcId", "subnet-id": "subNetId",
	"instance-id": "instanceId", "tcp-flags": "tcpFlags", "type": "trafficType",
	"pkt-srcaddr": "pktSrcAddr", "pkt-dstaddr": "pktDstAddr", "region": "region", "az-id": "azId",
	"sublocation-type": "sublocationType", "sublocation-id": "sublocationId",
	"pkt-src-aws-service": "pktSrcAwsService", "pkt-dst-aws-service": "pktDstAwsService",
	"flow-direction": "flowDirection", "traffic-path": "trafficPath",
	"ecs-cluster-arn": "ecsClusterArn", "ecs-cluster-name": "ecsClusterName",
	"ecs-container-instance-arn": "ecsContainerInstanceArn", "ecs-container-instance-id": "ecsContainerInstanceId",
	"ecs-container-id": "ecsContainerId", "ecs-second-container-id": "ecsSecondContainerId",
	"ecs-service-name": "ecsServiceName", "ecs-task-definition-arn": "ecsTaskDefinitionArn",
	"ecs-task-arn": "ecsTaskArn", "ecs-task-id": "ecsTaskId", "reject-reason": "rejectReason",
}

// The default (version 2) format.
var vpcFlowDefault = []string{"version", "account", "interfaceId", "srcAddr", "dstAddr", "srcPort",
	"dstPort", "protocol", "packets", "bytes", "start", "end", "action", "status"}

// VPCFlowHeader maps a header line to the schema's columns; ok is false
// when the line is not a VPC Flow header.
func VPCFlowHeader(line []byte) (cols []string, ok bool) {
	// Cheap rejection first, without a copy: records start with a value,
	// not a field name.
	first := bytes.TrimSpace(line)
	if i := bytes.IndexByte(first, ' '); i >= 0 {
		first = first[:i]
	}
	if _, known := vpcFlowColumns[string(first)]; !known {
		return nil, false
	}
	names := strings.Fields(string(line))
	cols = make([]string, len(names))
	for i, n := range names {
		c, known := vpcFlowColumns[n]
		if !known {
			return nil, false
		}
		cols[i] = c
	}
	return cols, true
}

// vpcFlowHeaders keeps the columns of the custom headers seen, which
// every line of their stream carries: a stream has one, a deployment a
// handful.
var vpcFlowHeaders = struct {
	sync.Mutex
	cols map[string][]string
}{cols: map[string][]string{}}

func vpcFlowHeaderColumns(header []byte) ([]string, bool) {
	vpcFlowHeaders.Lock()
	defer vpcFlowHeaders.Unlock()
	if cols, ok := vpcFlowHeaders.cols[string(header)]; ok {
		return cols, true
	}
	cols, ok := VPCFlowHeader(header)
	if !ok {
		return nil, false
	}
	if len(vpcFlowHeaders.cols) >= 256 {
		clear(vpcFlowHeaders.cols) // bounded: a sender varying its header does not grow it
	}
	vpcFlowHeaders.cols[string(header)] = cols
	return cols, true
}

// parseVPCFlow reads a VPC Flow Logs record, in the default format or in
// the custom field order of the stream's header line. NODATA and SKIPDATA
// records carry "-" for the fields they lack.
// https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html
func parseVPCFlow(m *Record, line, header []byte) error {
	if _, isHeader := VPCFlowHeader(line); isHeader {
		return ErrHeader
	}
	cols := vpcFlowDefault
	if len(header) > 0 {
		c, ok := vpcFlowHeaderColumns(header)
		if !ok {
			return fmt.Errorf("VPCFlow: header %q names unknown fields", firstBytes(header, 120))
		}
		cols = c
	}
	// Tokens are slices of the line's text.
	toks := m.spaceFields(line)
	for n, tok := range toks {
		if n < len(cols) {
			set(m, cols[n], tok)
		}
	}
	if n := len(toks); n != len(cols) {
		return fmt.Errorf("VPCFlow: %d fields, the format has %d", n, len(cols))
	}
	return nil
}

// parseS3ServerAccess reads an S3 server access log line:
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html
func parseS3ServerAccess(m *Record, line, _ []byte) error {
	f, err := m.fields(line)
	if err != nil {
		return err
	}
	if len(f) < 18 {
		return fmt.Errorf("S3ServerAccess: %d fields, want at least 18", len(f))
	}
	for i, v := range f {
		if i >= len(s3Columns) {
			break
		}
		set(m, s3Columns[i], v)
	}
	return nil
}

// The S3 server access log's fields, in order.
var s3Columns = []string{"bucketowner", "bucket", "time", "remoteip", "requester", "requestid", "operation",
	"key", "requesturi", "httpstatus", "errorcode", "bytessent", "objectsize", "totaltime",
	"turnaroundtime", "referrer", "useragent", "versionid", "hostid", "signatureversion",
	"ciphersuite", "authenticationtype", "hostheader", "tlsVersion", "accessPointArn", "aclRequired"}

// parseAuroraMySQLAudit reads an Aurora MySQL audit log line:
// timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode
// where object is a quoted query that may itself contain commas.
// https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Auditing.html
func parseAuroraMySQLAudit(m *Record, line, _ []byte) error {
	s := string(bytes.TrimSpace(line))
	head := strings.SplitN(s, ",", 9)
	if len(head) < 9 {
		return fmt.Errorf("AuroraMySQLAudit: %d fields, want 10", len(head))
	}
	rest := head[8]
	i := strings.LastIndexByte(rest, ',')
	if i < 0 {
		return fmt.Errorf("AuroraMySQLAudit: no retcode after the object")
	}
	for j, k := range []string{"timestamp", "serverHost", "username", "host", "connectionId", "queryId", "operation", "database"} {
		set(m, k, head[j])
	}
	obj := rest[:i]
	if len(obj) >= 2 && obj[0] == '\'' && obj[len(obj)-1] == '\'' {
		obj = strings.ReplaceAll(obj[1:len(obj)-1], `\'`, `'`)
	}
	set(m, "object", obj) // "-" is no query: a placeholder, as in AWS's other logs
	set(m, "retCode", rest[i+1:])
	return nil
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}
