package iamauth

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// stsNamespace is the XML namespace of STS 2011-06-15 responses.
const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// maxResponseSize bounds the STS response read.
const maxResponseSize = 64 << 10

type callerIdentity struct {
	ARN, UserID, Account string
}

var errResponse = errors.New("malformed GetCallerIdentity response")

// parseResponse decodes a GetCallerIdentity response strictly: the document
// element must be GetCallerIdentityResponse in the STS namespace, holding
// exactly one GetCallerIdentityResult with exactly one Arn, UserId and
// Account; nothing but comments, processing instructions and white space
// may surround it, and no DOCTYPE is accepted. A response forged inside
// another element, as in the reflected-content attack on Vault
// (CVE-2020-16250), therefore fails.
func parseResponse(body []byte) (callerIdentity, error) {
	d := xml.NewDecoder(strings.NewReader(string(body)))
	d.Strict = true
	var resp struct {
		XMLName xml.Name
		Result  []struct {
			ARN     []string `xml:"https://sts.amazonaws.com/doc/2011-06-15/ Arn"`
			UserID  []string `xml:"https://sts.amazonaws.com/doc/2011-06-15/ UserId"`
			Account []string `xml:"https://sts.amazonaws.com/doc/2011-06-15/ Account"`
		} `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResult"`
	}
	root := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return callerIdentity{}, errResponse
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root || t.Name.Space != stsNamespace || t.Name.Local != "GetCallerIdentityResponse" {
				return callerIdentity{}, errResponse
			}
			root = true
			if err := d.DecodeElement(&resp, &t); err != nil {
				return callerIdentity{}, errResponse
			}
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return callerIdentity{}, errResponse
			}
		case xml.Directive:
			return callerIdentity{}, errResponse
		case xml.Comment, xml.ProcInst:
		default:
			return callerIdentity{}, errResponse
		}
	}
	if !root || len(resp.Result) != 1 {
		return callerIdentity{}, errResponse
	}
	r := resp.Result[0]
	if len(r.ARN) != 1 || len(r.UserID) != 1 || len(r.Account) != 1 {
		return callerIdentity{}, errResponse
	}
	return callerIdentity{ARN: r.ARN[0], UserID: r.UserID[0], Account: r.Account[0]}, nil
}

// parseSTSError extracts Code from an STS ErrorResponse, or "".
func parseSTSError(body []byte) string {
	var e struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Error   struct {
			Code string `xml:"Code"`
		} `xml:"Error"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	code := e.Error.Code
	if len(code) > 64 || strings.ContainsFunc(code, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_')
	}) {
		return ""
	}
	return code
}
