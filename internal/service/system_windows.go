package service

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// Default is this system's manager: a logon task of Task Scheduler, its
// definition kept in stateDir.
func Default(stateDir string) (Manager, error) {
	tok := windows.GetCurrentProcessToken()
	u, err := tok.GetTokenUser()
	if err != nil {
		return nil, fmt.Errorf("who is this user: %w", err)
	}
	account, domain, _, err := u.User.Sid.LookupAccount("")
	if err != nil {
		return nil, fmt.Errorf("who is this user: %w", err)
	}
	return Schtasks{User: domain + `\` + account, Dir: stateDir}, nil
}
