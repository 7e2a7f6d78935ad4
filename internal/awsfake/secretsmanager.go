package awsfake

import (
	"fmt"
	"slices"
	"time"
)

type secret struct {
	name, arn string
	created   time.Time
	deletion  time.Time // when a scheduled deletion takes effect; zero if none
	versions  []*secretVersion
}

type secretVersion struct {
	id, value string
	created   time.Time
	stages    []string // AWSCURRENT, AWSPREVIOUS or none
}

func (s *secret) stage(label string) *secretVersion {
	for _, v := range s.versions {
		if slices.Contains(v.stages, label) {
			return v
		}
	}
	return nil
}

// secretsOp returns the handler of a Secrets Manager operation, or nil.
func (c *Cloud) secretsOp(op string) jsonOp {
	switch op {
	case "GetSecretValue":
		return c.secretsGetSecretValue
	case "CreateSecret":
		return c.secretsCreateSecret
	case "PutSecretValue":
		return c.secretsPutSecretValue
	case "DeleteSecret":
		return c.secretsDeleteSecret
	}
	return nil
}

// PutSecret stores a Secrets Manager secret's SecretString, creating the
// secret or adding a version that becomes AWSCURRENT.
func (c *Cloud) PutSecret(name, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.secrets[name]
	if s == nil {
		s = c.newSecretLocked(name)
	}
	s.putLocked(newUUID(), value)
}

func (c *Cloud) newSecretLocked(name string) *secret {
	s := &secret{
		name:    name,
		arn:     fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", c.Region, c.Account, name, randomString("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 6)),
		created: time.Now(),
	}
	c.secrets[name] = s
	return s
}

// putLocked adds a version and makes it AWSCURRENT, the current one
// becoming AWSPREVIOUS. A version ID already present is left as it is.
func (s *secret) putLocked(versionID, value string) *secretVersion {
	for _, v := range s.versions {
		if v.id == versionID {
			return v
		}
	}
	for _, v := range s.versions {
		v.stages = slices.DeleteFunc(v.stages, func(l string) bool { return l == "AWSPREVIOUS" })
		for i, l := range v.stages {
			if l == "AWSCURRENT" {
				v.stages[i] = "AWSPREVIOUS"
			}
		}
	}
	v := &secretVersion{id: versionID, value: value, created: time.Now(), stages: []string{"AWSCURRENT"}}
	s.versions = append(s.versions, v)
	return v
}

// secretLocked resolves a secret name or full ARN.
func (c *Cloud) secretLocked(id string) (*secret, *apiError) {
	s := c.secrets[id]
	if s == nil {
		for _, cand := range c.secrets {
			if cand.arn == id {
				s = cand
			}
		}
	}
	if s == nil {
		return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	}
	return s, nil
}

func (c *Cloud) secretsGetSecretValue(_ identity, body []byte) (any, *apiError) {
	var in struct {
		SecretID     string `json:"SecretId"`
		VersionID    string `json:"VersionId"`
		VersionStage string `json:"VersionStage"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, e := c.secretLocked(in.SecretID)
	if e != nil {
		return nil, e
	}
	if !s.deletion.IsZero() {
		return nil, errorf(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	var v *secretVersion
	switch {
	case in.VersionID != "":
		for _, cand := range s.versions {
			if cand.id == in.VersionID {
				v = cand
			}
		}
		if v == nil || in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage) {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionID)
		}
	case in.VersionStage != "":
		if v = s.stage(in.VersionStage); v == nil {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", in.VersionStage)
		}
	default:
		if v = s.stage("AWSCURRENT"); v == nil {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
		}
	}
	return map[string]any{
		"ARN":           s.arn,
		"Name":          s.name,
		"VersionId":     v.id,
		"SecretString":  v.value,
		"VersionStages": v.stages,
		"CreatedDate":   at(v.created),
	}, nil
}

func (c *Cloud) secretsCreateSecret(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Name               string  `json:"Name"`
		SecretString       *string `json:"SecretString"`
		ClientRequestToken string  `json:"ClientRequestToken"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.secrets[in.Name]; s != nil {
		if !s.deletion.IsZero() {
			return nil, errorf(400, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, errorf(400, "ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	s := c.newSecretLocked(in.Name)
	out := map[string]any{"ARN": s.arn, "Name": s.name}
	if in.SecretString != nil {
		token := in.ClientRequestToken
		if token == "" {
			token = newUUID()
		}
		out["VersionId"] = s.putLocked(token, *in.SecretString).id
	}
	return out, nil
}

func (c *Cloud) secretsPutSecretValue(_ identity, body []byte) (any, *apiError) {
	var in struct {
		SecretID           string `json:"SecretId"`
		SecretString       string `json:"SecretString"`
		ClientRequestToken string `json:"ClientRequestToken"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, e := c.secretLocked(in.SecretID)
	if e != nil {
		return nil, e
	}
	if !s.deletion.IsZero() {
		return nil, errorf(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	token := in.ClientRequestToken
	if token == "" {
		token = newUUID()
	}
	v := s.putLocked(token, in.SecretString)
	if v.value != in.SecretString {
		return nil, errorf(400, "ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
	}
	return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.id, "VersionStages": v.stages}, nil
}

func (c *Cloud) secretsDeleteSecret(_ identity, body []byte) (any, *apiError) {
	var in struct {
		SecretID                   string `json:"SecretId"`
		RecoveryWindowInDays       *int64 `json:"RecoveryWindowInDays"`
		ForceDeleteWithoutRecovery bool   `json:"ForceDeleteWithoutRecovery"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if in.ForceDeleteWithoutRecovery && in.RecoveryWindowInDays != nil {
		return nil, errorf(400, "InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, errorf(400, "InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, e := c.secretLocked(in.SecretID)
	if e != nil {
		return nil, e
	}
	when := time.Now()
	if in.ForceDeleteWithoutRecovery {
		delete(c.secrets, s.name)
	} else if s.deletion.IsZero() {
		s.deletion = when.Add(time.Duration(days) * 24 * time.Hour)
	}
	if !s.deletion.IsZero() {
		when = s.deletion
	}
	return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": at(when)}, nil
}
