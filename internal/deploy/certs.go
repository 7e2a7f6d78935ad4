package deploy

import (
	"context"

	"fluidity/internal/certstore"
	"fluidity/internal/pki"
)

// storeCerts puts the exit's bundle (its CA, certificate and key) where the
// exit reads it, and returns the secret's ARN when it is in Secrets Manager.
func (c *clients) storeCerts(ctx context.Context, o Options, step func(string, ...any)) (string, error) {
	bundle, err := pki.ServerBundle(o.certsDir())
	if err != nil {
		return "", err
	}
	loc := certstore.Location{Scheme: certstore.SSM, Name: o.certsName()}
	if o.SecretsManager {
		loc = certstore.Location{Scheme: certstore.SecretsManager, Name: o.certsName()[1:]}
	}
	changed, arn, err := PushCerts(ctx, c.cfg, loc, bundle, "Fluidity exit "+o.Name+": CA, certificate and key")
	if err != nil {
		return "", err
	}
	if changed {
		step("stored the exit's certificates in %s", loc)
	} else {
		step("the exit's certificates in %s are current", loc)
	}
	return arn, nil
}
