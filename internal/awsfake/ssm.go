package awsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Parameter Store limits, from the API reference.
const (
	ssmMaxStandardValue = 4096
	ssmMaxAdvancedValue = 8192
)

type parameter struct {
	name, typ, value, tier string
	version                int64
	modified               time.Time
}

type ssmParameterOut struct {
	Name             string `json:"Name"`
	Type             string `json:"Type"`
	Value            string `json:"Value"`
	Version          int64  `json:"Version"`
	LastModifiedDate *epoch `json:"LastModifiedDate"`
	ARN              string `json:"ARN"`
	DataType         string `json:"DataType"`
}

// ssmOp returns the handler of an SSM operation, or nil.
func (c *Cloud) ssmOp(op string) jsonOp {
	switch op {
	case "GetParameter":
		return c.ssmGetParameter
	case "PutParameter":
		return c.ssmPutParameter
	case "DeleteParameter":
		return c.ssmDeleteParameter
	case "GetParametersByPath":
		return c.ssmGetParametersByPath
	}
	return nil
}

// PutParameter stores an SSM parameter, a SecureString if secure, as a
// new version.
func (c *Cloud) PutParameter(name, value string, secure bool) {
	typ := "String"
	if secure {
		typ = "SecureString"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putParameterLocked(name, value, typ, "Standard")
}

func (c *Cloud) putParameterLocked(name, value, typ, tier string) *parameter {
	p := c.params[name]
	if p == nil {
		p = &parameter{name: name}
		c.params[name] = p
	}
	p.typ, p.value, p.tier = typ, value, tier
	p.version++
	p.modified = time.Now()
	return p
}

func (c *Cloud) parameterARN(name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", c.Region, c.Account, strings.TrimPrefix(name, "/"))
}

// parameterLocked resolves a parameter name or ARN.
func (c *Cloud) parameterLocked(nameOrARN string) *parameter {
	name := nameOrARN
	if rest, ok := strings.CutPrefix(name, fmt.Sprintf("arn:aws:ssm:%s:%s:parameter", c.Region, c.Account)); ok {
		name = rest
		if p := c.params[strings.TrimPrefix(name, "/")]; p != nil {
			return p
		}
	}
	return c.params[name]
}

// ciphertext is what GetParameter shows of a SecureString without
// decryption: an opaque stand-in for a KMS ciphertext blob.
func (c *Cloud) ciphertext(p *parameter) string {
	mac := hmac.New(sha256.New, []byte(c.urlID))
	fmt.Fprintf(mac, "%s\x00%d\x00%s", p.name, p.version, p.value)
	return base64.StdEncoding.EncodeToString(append([]byte("AQICAHh-awsfake-"), mac.Sum(nil)...))
}

func (c *Cloud) ssmGetParameter(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Name           string `json:"Name"`
		WithDecryption bool   `json:"WithDecryption"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parameterLocked(in.Name)
	if p == nil {
		return nil, errorf(400, "ParameterNotFound", "")
	}
	value := p.value
	if p.typ == "SecureString" && !in.WithDecryption {
		value = c.ciphertext(p)
	}
	return map[string]any{"Parameter": ssmParameterOut{
		Name:             p.name,
		Type:             p.typ,
		Value:            value,
		Version:          p.version,
		LastModifiedDate: at(p.modified),
		ARN:              c.parameterARN(p.name),
		DataType:         "text",
	}}, nil
}

func (c *Cloud) ssmPutParameter(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Name      string `json:"Name"`
		Value     string `json:"Value"`
		Type      string `json:"Type"`
		Tier      string `json:"Tier"`
		Overwrite bool   `json:"Overwrite"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	switch in.Type {
	case "", "String", "StringList", "SecureString":
	default:
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	tier := in.Tier
	switch tier {
	case "", "Standard", "Intelligent-Tiering":
		tier = "Standard"
		if utf8.RuneCountInString(in.Value) > ssmMaxStandardValue {
			return nil, errorf(400, "ValidationException", "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html")
		}
	case "Advanced":
		if utf8.RuneCountInString(in.Value) > ssmMaxAdvancedValue {
			return nil, errorf(400, "ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to %d", ssmMaxAdvancedValue)
		}
	default:
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value '%s' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]", in.Tier)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.params[in.Name]
	typ := in.Type
	switch {
	case p != nil && !in.Overwrite:
		return nil, errorf(400, "ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	case p == nil && typ == "":
		return nil, errorf(400, "ValidationException", "A parameter type is required when you create a parameter.")
	case typ == "":
		typ = p.typ
	}
	p = c.putParameterLocked(in.Name, in.Value, typ, tier)
	return map[string]any{"Version": p.version, "Tier": p.tier}, nil
}

func (c *Cloud) ssmDeleteParameter(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Name string `json:"Name"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.params[in.Name] == nil {
		return nil, errorf(400, "ParameterNotFound", "")
	}
	delete(c.params, in.Name)
	return struct{}{}, nil
}

// ssmPathPage is how many parameters one GetParametersByPath answers.
const ssmPathPage = 10

func (c *Cloud) ssmGetParametersByPath(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Path           string `json:"Path"`
		Recursive      bool   `json:"Recursive"`
		WithDecryption bool   `json:"WithDecryption"`
		NextToken      string `json:"NextToken"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !strings.HasPrefix(in.Path, "/") {
		return nil, errorf(400, "ValidationException", "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".")
	}
	prefix := strings.TrimSuffix(in.Path, "/") + "/"
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for name := range c.params {
		rest, ok := strings.CutPrefix(name, prefix)
		if ok && rest != "" && (in.Recursive || !strings.Contains(rest, "/")) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 || n > len(names) {
			return nil, errorf(400, "InvalidNextToken", "The specified token is not valid.")
		}
		start = n
	}
	end := min(start+ssmPathPage, len(names))
	out := map[string]any{"Parameters": []ssmParameterOut{}}
	var params []ssmParameterOut
	for _, name := range names[start:end] {
		p := c.params[name]
		value := p.value
		if p.typ == "SecureString" && !in.WithDecryption {
			value = c.ciphertext(p)
		}
		params = append(params, ssmParameterOut{Name: p.name, Type: p.typ, Value: value, Version: p.version,
			LastModifiedDate: at(p.modified), ARN: c.parameterARN(p.name), DataType: "text"})
	}
	if params != nil {
		out["Parameters"] = params
	}
	if end < len(names) {
		out["NextToken"] = strconv.Itoa(end)
	}
	return out, nil
}
