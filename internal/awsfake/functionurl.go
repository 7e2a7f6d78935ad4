package awsfake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// functionURLMaxBody is Lambda's limit on a synchronous invocation's
// request payload, 6 MB.
const functionURLMaxBody = 6 * 1024 * 1024

// The request event a function URL sends: aws-lambda-go's
// events.LambdaFunctionURLRequest, with the members it leaves out.
type urlRequest struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        urlRequestContext `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	PathParameters        map[string]string `json:"pathParameters"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
	StageVariables        map[string]string `json:"stageVariables"`
}

type urlRequestContext struct {
	AccountID      string `json:"accountId"`
	APIID          string `json:"apiId"`
	Authentication any    `json:"authentication"`
	Authorizer     struct {
		IAM urlIAM `json:"iam"`
	} `json:"authorizer"`
	DomainName   string `json:"domainName"`
	DomainPrefix string `json:"domainPrefix"`
	HTTP         struct {
		Method    string `json:"method"`
		Path      string `json:"path"`
		Protocol  string `json:"protocol"`
		SourceIP  string `json:"sourceIp"`
		UserAgent string `json:"userAgent"`
	} `json:"http"`
	RequestID string `json:"requestId"`
	RouteKey  string `json:"routeKey"`
	Stage     string `json:"stage"`
	Time      string `json:"time"`
	TimeEpoch int64  `json:"timeEpoch"`
}

type urlIAM struct {
	AccessKey       string `json:"accessKey"`
	AccountID       string `json:"accountId"`
	CallerID        string `json:"callerId"`
	CognitoIdentity any    `json:"cognitoIdentity"`
	PrincipalOrgID  any    `json:"principalOrgId"`
	UserARN         string `json:"userArn"`
	UserID          string `json:"userId"`
}

// urlResponse is a function's response in the function URL format.
type urlResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Cookies         []string          `json:"cookies"`
}

func urlMessage(status int, msg string) reply {
	b, _ := json.Marshal(map[string]string{"Message": msg})
	return reply{status: status, header: http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {newUUID()}}, body: b}
}

var (
	urlForbidden = func() reply {
		return urlMessage(http.StatusForbidden, "Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html")
	}
	urlBadGateway = func() reply { return urlMessage(http.StatusBadGateway, "Internal Server Error") }
)

// serveFunctionURL is the function URL, with AWS_IAM auth.
func (c *Cloud) serveFunctionURL(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, functionURLMaxBody+1))
	if err != nil {
		return
	}
	call := Call{Op: "lambda:InvokeFunctionUrl"}
	rep := c.invokeURL(&call, r, body)
	call.Status, call.Body = rep.status, body
	c.record(call)
	write(w, rep)
}

func (c *Cloud) invokeURL(call *Call, r *http.Request, body []byte) reply {
	if len(body) > functionURLMaxBody {
		return urlMessage(http.StatusRequestEntityTooLarge, "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
	}
	id, res := c.authenticate(r, body, "lambda")
	call.AccessKeyID = res.accessKeyID
	if res.failure != sigOK {
		return urlForbidden()
	}
	call.Caller = id.arn
	if e := c.takeFault(call.Op); e != nil {
		rep := urlMessage(e.Status, e.Message)
		rep.header.Set("X-Amzn-Errortype", e.Code)
		return rep
	}
	if c.cfg.Invoke == nil {
		return urlBadGateway()
	}
	event, err := json.Marshal(c.urlEvent(r, body, id, res.accessKeyID))
	if err != nil {
		return urlBadGateway()
	}
	// The invocation ends with the request or with the Cloud, so that
	// Close does not wait for a function that waits for a poller.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(c.life, cancel)()
	payload, err := c.cfg.Invoke(ctx, event)
	if err != nil {
		return urlBadGateway()
	}
	return urlReply(payload)
}

// urlEvent builds the event a function URL sends for r.
func (c *Cloud) urlEvent(r *http.Request, body []byte, id identity, akid string) urlRequest {
	now := time.Now().UTC()
	ev := urlRequest{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
	}
	for k, vs := range r.Header {
		k = strings.ToLower(k)
		if k == "cookie" {
			for _, v := range vs {
				for _, cookie := range strings.Split(v, ";") {
					if cookie = strings.TrimSpace(cookie); cookie != "" {
						ev.Cookies = append(ev.Cookies, cookie)
					}
				}
			}
			continue
		}
		ev.Headers[k] = strings.Join(vs, ",")
	}
	sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev.Headers["host"] = r.Host
	ev.Headers["x-forwarded-for"] = sourceIP
	ev.Headers["x-forwarded-proto"] = "https"
	ev.Headers["x-forwarded-port"] = "443"
	ev.Headers["x-amzn-trace-id"] = traceRoot(now)
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	rc := &ev.RequestContext
	rc.AccountID = c.Account
	rc.APIID = c.urlID
	rc.Authorizer.IAM = urlIAM{AccessKey: akid, AccountID: id.account, CallerID: id.userID, UserARN: id.arn, UserID: id.userID}
	rc.DomainName = c.urlID + ".lambda-url." + c.Region + ".on.aws"
	rc.DomainPrefix = c.urlID
	rc.HTTP.Method = r.Method
	rc.HTTP.Path = r.URL.Path
	rc.HTTP.Protocol = r.Proto
	rc.HTTP.SourceIP = sourceIP
	rc.HTTP.UserAgent = r.UserAgent()
	rc.RequestID = newUUID()
	rc.RouteKey = "$default"
	rc.Stage = "$default"
	rc.Time = now.Format("02/Jan/2006:15:04:05 -0700")
	rc.TimeEpoch = now.UnixMilli()
	return ev
}

func traceRoot(now time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%s", now.Unix(), randomHex(24))
}

// textual reports whether a function URL passes a body of this content
// type as text rather than base64.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return true
	case slices.Contains([]string{"application/json", "application/javascript", "application/xml", "application/yaml", "application/x-yaml"}, mt):
		return true
	case strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// urlReply turns a function's response payload into the HTTP response a
// function URL sends: a JSON object with a statusCode is the response;
// any other JSON is the body of a 200 application/json response; anything
// else is a 502.
func urlReply(payload []byte) reply {
	if !json.Valid(payload) {
		return urlBadGateway()
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(payload, &probe) != nil || probe["statusCode"] == nil {
		return reply{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {newUUID()}}, body: payload}
	}
	var resp urlResponse
	if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 999 {
		return urlBadGateway()
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return urlBadGateway()
		}
	}
	h := http.Header{"X-Amzn-Requestid": {newUUID()}}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	for _, cookie := range resp.Cookies {
		h.Add("Set-Cookie", cookie)
	}
	return reply{status: resp.StatusCode, header: h, body: bytes.Clone(body)}
}
