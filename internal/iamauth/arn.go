package iamauth

import (
	"errors"
	"strings"
)

// arn is a parsed IAM or STS principal ARN.
type arn struct {
	partition, service, account, resource string
}

func (a arn) String() string {
	return "arn:" + a.partition + ":" + a.service + "::" + a.account + ":" + a.resource
}

var errARN = errors.New("not an IAM or STS principal ARN")

// parseARN accepts "arn:PARTITION:SERVICE::ACCOUNT:RESOURCE" with exactly
// six colon-separated parts, a known partition, service iam or sts, no
// region and a 12-digit account.
func parseARN(s string) (arn, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[3] != "" || parts[5] == "" {
		return arn{}, errARN
	}
	a := arn{partition: parts[1], service: parts[2], account: parts[4], resource: parts[5]}
	switch a.partition {
	case "aws", "aws-cn", "aws-us-gov":
	default:
		return arn{}, errARN
	}
	if a.service != "iam" && a.service != "sts" || !isAccountID(a.account) {
		return arn{}, errARN
	}
	return a, nil
}

// canonicalARN turns a GetCallerIdentity ARN into the principal it stands
// for: an assumed-role session "arn:aws:sts::ACCT:assumed-role/ROLE/SESSION"
// becomes its role "arn:aws:iam::ACCT:role/ROLE" (the session name is chosen
// by whoever assumes the role, so it must not matter). Users, the account
// root and federated users keep their ARN. Anything else is an error.
func canonicalARN(s string) (arn, error) {
	a, err := parseARN(s)
	if err != nil {
		return arn{}, err
	}
	kind, rest, _ := strings.Cut(a.resource, "/")
	switch {
	case a.service == "sts" && kind == "assumed-role":
		role, session, ok := strings.Cut(rest, "/")
		if !ok || role == "" || session == "" || strings.Contains(session, "/") {
			return arn{}, errARN
		}
		return arn{partition: a.partition, service: "iam", account: a.account, resource: "role/" + role}, nil
	case a.service == "sts" && kind == "federated-user" && rest != "" && !strings.Contains(rest, "/"):
		return a, nil
	case a.service == "iam" && (kind == "user" || kind == "role") && validPath(rest):
		return a, nil
	case a.service == "iam" && a.resource == "root":
		return a, nil
	}
	return arn{}, errARN
}

// validPath checks "NAME" or "PATH/…/NAME" with no empty segment.
func validPath(s string) bool {
	if s == "" {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			return false
		}
	}
	return true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// roleKey names a role without its path: an assumed-role ARN does not carry
// the role's path, so role ARNs are compared on partition, account and name.
func roleKey(a arn) string {
	name := a.resource[strings.LastIndex(a.resource, "/")+1:]
	return a.partition + ":" + a.account + ":" + name
}

// allowlist is the parsed Config.Allow.
type allowlist struct {
	accounts   map[string]bool // "123456789012"
	roles      map[string]bool // roleKey
	principals map[string]bool // exact canonical ARNs: users, root, federated users
}

func parseAllow(entries []string) (allowlist, error) {
	al := allowlist{accounts: map[string]bool{}, roles: map[string]bool{}, principals: map[string]bool{}}
	for _, e := range entries {
		if isAccountID(e) {
			al.accounts[e] = true
			continue
		}
		a, err := parseARN(e)
		if err != nil {
			return allowlist{}, &configError{key: "iam.allow", msg: "entry " + quote(e) + " is neither a 12-digit account ID nor an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME or user/NAME)"}
		}
		if a.service == "sts" && strings.HasPrefix(a.resource, "assumed-role/") {
			return allowlist{}, &configError{key: "iam.allow", msg: "entry " + quote(e) + " is a role session; allow its role instead (arn:" + a.partition + ":iam::" + a.account + ":role/NAME)"}
		}
		c, err := canonicalARN(e)
		if err != nil {
			return allowlist{}, &configError{key: "iam.allow", msg: "entry " + quote(e) + " is not a role, user, root or federated-user ARN"}
		}
		if strings.HasPrefix(c.resource, "role/") {
			al.roles[roleKey(c)] = true
		} else {
			al.principals[c.String()] = true
		}
	}
	return al, nil
}

// allows reports whether the canonical identity is allowed.
func (al allowlist) allows(c arn) bool {
	if al.accounts[c.account] {
		return true
	}
	if strings.HasPrefix(c.resource, "role/") {
		return al.roles[roleKey(c)]
	}
	return al.principals[c.String()]
}
