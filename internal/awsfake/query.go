package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// API versions of the query-protocol services, which tell them apart.
const (
	stsVersion = "2011-06-15"
	cfnVersion = "2010-05-15"
)

// serveQuery routes a form-encoded (query protocol) request by its
// Version: EC2, STS or CloudFormation.
func (c *Cloud) serveQuery(r *http.Request, body []byte) (Call, reply) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Call{}, ec2Error(errorf(400, "MalformedQueryString", "%v", err))
	}
	switch form.Get("Version") {
	case stsVersion:
		return c.serveAWSQuery(r, body, form, "sts", stsNamespace, c.stsOp)
	case cfnVersion:
		return c.serveAWSQuery(r, body, form, "cloudformation", cfnNamespace, c.cfnOp)
	}
	return c.serveEC2(r, body)
}

// queryOp handles one query-protocol operation; it returns the Result
// element's content (an XML-marshallable value) or an error.
type queryOp func(id identity, form url.Values) (any, *apiError)

// serveAWSQuery serves the awsQuery protocol of STS and CloudFormation:
// <OpResponse><OpResult>…</OpResult><ResponseMetadata>…, and
// <ErrorResponse> on errors.
func (c *Cloud) serveAWSQuery(r *http.Request, body []byte, form url.Values, service, ns string, ops func(string) queryOp) (Call, reply) {
	action := form.Get("Action")
	call := Call{Op: service + ":" + action}
	id, res := c.authenticate(r, body, service)
	call.AccessKeyID = res.accessKeyID
	switch res.failure {
	case sigMissing:
		return call, queryError(ns, errorf(403, "MissingAuthenticationToken", "Request is missing Authentication Token"))
	case sigMalformed:
		return call, queryError(ns, errorf(400, "IncompleteSignature", "%s", res.message))
	case sigUnknownKey:
		return call, queryError(ns, errorf(403, "InvalidClientTokenId", "The security token included in the request is invalid."))
	case sigMismatch:
		return call, queryError(ns, errorf(403, "SignatureDoesNotMatch", "%s", res.message))
	}
	call.Caller = id.arn
	handle := ops(action)
	if handle == nil {
		return call, queryError(ns, errorf(400, "InvalidAction", "Could not find operation %s for version %s", action, form.Get("Version")))
	}
	if e := c.takeFault(call.Op); e != nil {
		return call, queryError(ns, e)
	}
	result, e := handle(id, form)
	if e != nil {
		return call, queryError(ns, e)
	}
	inner, err := xml.Marshal(result)
	if err != nil {
		return call, queryError(ns, errorf(500, "InternalFailure", "%v", err))
	}
	doc := fmt.Sprintf(`<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
		action, ns, action, stripOuter(inner), action, newUUID(), action)
	return call, reply{status: http.StatusOK, header: http.Header{"Content-Type": {"text/xml"}}, body: []byte(doc)}
}

// stripOuter drops the outermost element of a marshalled value, leaving
// its children: a result type is marshalled as <x>…</x>, and the protocol
// wants only the children inside <OpResult>.
func stripOuter(b []byte) string {
	s := string(b)
	start := strings.IndexByte(s, '>')
	end := strings.LastIndexByte(s, '<')
	if start < 0 || end <= start || strings.HasSuffix(s[:start+1], "/>") {
		return ""
	}
	return s[start+1 : end]
}

func queryError(ns string, e *apiError) reply {
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	body := `<ErrorResponse xmlns="` + ns + `"><Error><Type>` + typ + `</Type><Code>` + esc(e.Code) + `</Code><Message>` +
		esc(e.Message) + `</Message></Error><RequestId>` + newUUID() + `</RequestId></ErrorResponse>`
	return reply{status: e.Status, header: http.Header{"Content-Type": {"text/xml"}}, body: []byte(body)}
}

// members reads a query-protocol list of structures, prefix.member.N.Field.
func members(form url.Values, prefix string) []map[string]string {
	byIndex := map[int]map[string]string{}
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, prefix+".member.")
		if !ok {
			continue
		}
		n, field, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if byIndex[i] == nil {
			byIndex[i] = map[string]string{}
		}
		byIndex[i][field] = vs[0]
	}
	idx := make([]int, 0, len(byIndex))
	for i := range byIndex {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]map[string]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, byIndex[i])
	}
	return out
}

// stsOp is the handler of an STS operation the Cloud answers, or nil.
func (c *Cloud) stsOp(op string) queryOp {
	if op == "GetCallerIdentity" {
		return func(id identity, _ url.Values) (any, *apiError) {
			return struct {
				XMLName xml.Name `xml:"r"`
				Arn     string   `xml:"Arn"`
				UserID  string   `xml:"UserId"`
				Account string   `xml:"Account"`
			}{Arn: id.arn, UserID: id.userID, Account: id.account}, nil
		}
	}
	return nil
}
