// Package principal parses the ARNs of AWS IAM principals, turns the ARN a
// caller is reported as into the principal that owns it (an assumed-role
// session into its role), and matches principals against an allowlist.
//
// The exit's IAM check and the control plane's owner of a task both use it,
// so that "who is this" and "who may" mean the same on both.
package principal

import (
	"errors"
	"strconv"
	"strings"
)

// ARN is a parsed IAM or STS principal ARN.
type ARN struct {
	Partition, Service, Account, Resource string
}

func (a ARN) String() string {
	return "arn:" + a.Partition + ":" + a.Service + "::" + a.Account + ":" + a.Resource
}

// IsRole reports whether a is an IAM role.
func (a ARN) IsRole() bool { return a.Service == "iam" && strings.HasPrefix(a.Resource, "role/") }

// ErrNotPrincipal is returned for a string that is not an IAM or STS
// principal ARN.
var ErrNotPrincipal = errors.New("not an IAM or STS principal ARN")

// Parse accepts "arn:PARTITION:SERVICE::ACCOUNT:RESOURCE" with exactly six
// colon-separated parts, a known partition, service iam or sts, no region
// and a 12-digit account.
func Parse(s string) (ARN, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[3] != "" || parts[5] == "" {
		return ARN{}, ErrNotPrincipal
	}
	a := ARN{Partition: parts[1], Service: parts[2], Account: parts[4], Resource: parts[5]}
	switch a.Partition {
	case "aws", "aws-cn", "aws-us-gov":
	default:
		return ARN{}, ErrNotPrincipal
	}
	if a.Service != "iam" && a.Service != "sts" || !IsAccountID(a.Account) {
		return ARN{}, ErrNotPrincipal
	}
	return a, nil
}

// Canonical turns a caller's ARN (as GetCallerIdentity or a function URL
// reports it) into the principal it stands for: an assumed-role session
// "arn:aws:sts::ACCT:assumed-role/ROLE/SESSION" becomes its role
// "arn:aws:iam::ACCT:role/ROLE" (the session name is chosen by whoever
// assumes the role, so it must not matter). Users, roles, the account root
// and federated users keep their ARN. Anything else is an error.
func Canonical(s string) (ARN, error) {
	a, err := Parse(s)
	if err != nil {
		return ARN{}, err
	}
	kind, rest, _ := strings.Cut(a.Resource, "/")
	switch {
	case a.Service == "sts" && kind == "assumed-role":
		role, session, ok := strings.Cut(rest, "/")
		if !ok || role == "" || session == "" || strings.Contains(session, "/") {
			return ARN{}, ErrNotPrincipal
		}
		return ARN{Partition: a.Partition, Service: "iam", Account: a.Account, Resource: "role/" + role}, nil
	case a.Service == "sts" && kind == "federated-user" && rest != "" && !strings.Contains(rest, "/"):
		return a, nil
	case a.Service == "iam" && (kind == "user" || kind == "role") && validPath(rest):
		return a, nil
	case a.Service == "iam" && a.Resource == "root":
		return a, nil
	}
	return ARN{}, ErrNotPrincipal
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

// IsAccountID reports whether s is a 12-digit AWS account ID.
func IsAccountID(s string) bool {
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
func roleKey(a ARN) string {
	name := a.Resource[strings.LastIndex(a.Resource, "/")+1:]
	return a.Partition + ":" + a.Account + ":" + name
}

// Allowlist is a set of principals: whole accounts, roles (any session of
// the role, whatever its path) and exact users, account roots and federated
// users. The zero Allowlist allows no one.
type Allowlist struct {
	accounts   map[string]bool // "123456789012"
	roles      map[string]bool // roleKey
	principals map[string]bool // exact canonical ARNs: users, root, federated users
}

// ParseAllowlist parses entries, each a 12-digit account ID or a role,
// user, root or federated-user ARN. Its errors name the entry at fault and
// the fix.
func ParseAllowlist(entries []string) (Allowlist, error) {
	al := Allowlist{accounts: map[string]bool{}, roles: map[string]bool{}, principals: map[string]bool{}}
	for _, e := range entries {
		if IsAccountID(e) {
			al.accounts[e] = true
			continue
		}
		a, err := Parse(e)
		if err != nil {
			return Allowlist{}, errors.New("entry " + strconv.Quote(e) + " is neither a 12-digit account ID nor an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME or user/NAME)")
		}
		if a.Service == "sts" && strings.HasPrefix(a.Resource, "assumed-role/") {
			return Allowlist{}, errors.New("entry " + strconv.Quote(e) + " is a role session; allow its role instead (arn:" + a.Partition + ":iam::" + a.Account + ":role/NAME)")
		}
		c, err := Canonical(e)
		if err != nil {
			return Allowlist{}, errors.New("entry " + strconv.Quote(e) + " is not a role, user, root or federated-user ARN")
		}
		if c.IsRole() {
			al.roles[roleKey(c)] = true
		} else {
			al.principals[c.String()] = true
		}
	}
	return al, nil
}

// Allows reports whether the canonical principal c is allowed.
func (al Allowlist) Allows(c ARN) bool {
	if al.accounts[c.Account] {
		return true
	}
	if c.IsRole() {
		return al.roles[roleKey(c)]
	}
	return al.principals[c.String()]
}

// Len is the number of entries.
func (al Allowlist) Len() int { return len(al.accounts) + len(al.roles) + len(al.principals) }
