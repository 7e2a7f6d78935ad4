package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// applyStack creates the stack name from the embedded template tpl with
// params, or updates it, waits until CloudFormation is done, showing its
// progress, and returns the stack's outputs.
func (c *clients) applyStack(ctx context.Context, o Options, name, tpl string, params map[string]string, step func(string, ...any)) (map[string]string, error) {
	st, err := c.settledStack(ctx, o, name, step)
	if err != nil {
		return nil, err
	}
	var cfParams []cftypes.Parameter
	for _, k := range sortedKeys(params) {
		cfParams = append(cfParams, cftypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(params[k])})
	}
	token := newToken()
	body := aws.String(string(Template(tpl)))
	caps := []cftypes.Capability{cftypes.CapabilityCapabilityIam, cftypes.CapabilityCapabilityNamedIam}
	tags := []cftypes.Tag{{Key: aws.String("fluidity"), Value: aws.String(o.Name)}}
	if st == nil {
		step("creating the stack %s", name)
		_, err = c.cfn.CreateStack(ctx, &cloudformation.CreateStackInput{
			StackName: aws.String(name), TemplateBody: body, Parameters: cfParams, Capabilities: caps, Tags: tags,
			ClientRequestToken: aws.String(token),
		})
		if err != nil {
			return nil, explain(err, "cloudformation:CreateStack", "")
		}
	} else {
		_, err = c.cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{
			StackName: aws.String(name), TemplateBody: body, Parameters: cfParams, Capabilities: caps, Tags: tags,
			ClientRequestToken: aws.String(token),
		})
		if isNoUpdate(err) {
			step("the stack %s is up to date", name)
			return outputs(st), nil
		}
		if err != nil {
			return nil, explain(err, "cloudformation:UpdateStack", "")
		}
		step("updating the stack %s", name)
	}
	st, err = c.waitStack(ctx, o, name, token)
	if err != nil {
		return nil, err
	}
	return outputs(st), nil
}

// settledStack returns the stack name as it is once no operation is in
// progress on it, or nil if there is none (or only an empty one left by a
// failed creation, which it deletes so the stack can be created anew).
func (c *clients) settledStack(ctx context.Context, o Options, name string, step func(string, ...any)) (*cftypes.Stack, error) {
	for {
		st, err := c.describeStack(ctx, name)
		if err != nil || st == nil {
			return nil, err
		}
		status := string(st.StackStatus)
		switch {
		case strings.HasSuffix(status, "_IN_PROGRESS"):
			step("the stack %s is busy (%s); waiting for it", name, status)
			if _, err := c.waitStack(ctx, o, name, ""); err != nil && !errors.Is(err, errStackFailed) {
				return nil, err
			}
			continue
		case status == string(cftypes.StackStatusRollbackComplete):
			// A creation that failed leaves an empty stack that cannot be
			// updated: delete it and create it again.
			step("the stack %s failed to be created earlier (%s); deleting it to create it again", name, aws.ToString(st.StackStatusReason))
			if err := c.deleteStack(ctx, o, name); err != nil {
				return nil, err
			}
			return nil, nil
		case status == string(cftypes.StackStatusRollbackFailed), status == string(cftypes.StackStatusUpdateRollbackFailed),
			status == string(cftypes.StackStatusDeleteFailed):
			return nil, fmt.Errorf("the stack %s is in the state %s (%s), which CloudFormation cannot update; "+
				"remove it with 'fluidity aws destroy --stack %s' (for %s, first let CloudFormation finish the rollback: "+
				"aws cloudformation continue-update-rollback --stack-name %s) and deploy again",
				name, status, aws.ToString(st.StackStatusReason), o.Name, cftypes.StackStatusUpdateRollbackFailed, name)
		}
		return st, nil
	}
}

// describeStack returns the stack, or nil if it does not exist.
func (c *clients) describeStack(ctx context.Context, name string) (*cftypes.Stack, error) {
	out, err := c.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, explain(err, "cloudformation:DescribeStacks", "")
	}
	for i := range out.Stacks {
		if out.Stacks[i].StackStatus != cftypes.StackStatusDeleteComplete {
			return &out.Stacks[i], nil
		}
	}
	return nil, nil
}

var errStackFailed = errors.New("stack operation failed")

// waitStack waits until the stack's operation (the one with the client
// request token, or whatever is in progress if token is "") is over,
// printing each resource's progress, and returns the stack. A failed or
// rolled back operation is an error wrapping errStackFailed that names the
// first resource that failed and why.
func (c *clients) waitStack(ctx context.Context, o Options, name, token string) (*cftypes.Stack, error) {
	seen := map[string]bool{}
	var firstFailure string
	for {
		st, err := c.describeStack(ctx, name)
		if err != nil {
			return nil, err
		}
		events, err := c.stackEvents(ctx, name, token, seen)
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			reason := ""
			if r := aws.ToString(e.ResourceStatusReason); r != "" {
				reason = ": " + r
			}
			fmt.Fprintf(o.Out, "    %-38s %-22s %s%s\n", aws.ToString(e.ResourceType), aws.ToString(e.LogicalResourceId), e.ResourceStatus, reason)
			if firstFailure == "" && strings.HasSuffix(string(e.ResourceStatus), "_FAILED") && aws.ToString(e.ResourceStatusReason) != "" &&
				!strings.Contains(aws.ToString(e.ResourceStatusReason), "Resource creation cancelled") {
				firstFailure = fmt.Sprintf("%s %s: %s", aws.ToString(e.ResourceType), aws.ToString(e.LogicalResourceId), aws.ToString(e.ResourceStatusReason))
			}
		}
		if st == nil {
			return nil, nil // deleted
		}
		status := string(st.StackStatus)
		if !strings.HasSuffix(status, "_IN_PROGRESS") {
			switch st.StackStatus {
			case cftypes.StackStatusCreateComplete, cftypes.StackStatusUpdateComplete:
				return st, nil
			}
			why := firstFailure
			if why == "" {
				why = aws.ToString(st.StackStatusReason)
			}
			return nil, fmt.Errorf("%w: the stack %s ended in %s: %s; see its events in the CloudFormation console", errStackFailed, name, status, why)
		}
		t := time.NewTimer(o.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the stack %s: %w (CloudFormation goes on; deploy again to pick it up)", name, ctx.Err())
		case <-t.C:
		}
	}
}

// stackEvents returns the stack's events of the operation with token (all
// if token is "") not in seen, oldest first, and adds them to seen.
func (c *clients) stackEvents(ctx context.Context, name, token string, seen map[string]bool) ([]cftypes.StackEvent, error) {
	var fresh []cftypes.StackEvent
	pages := cloudformation.NewDescribeStackEventsPaginator(c.cfn, &cloudformation.DescribeStackEventsInput{StackName: aws.String(name)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if isNotExist(err) {
			break
		}
		if err != nil {
			return nil, explain(err, "cloudformation:DescribeStackEvents", "")
		}
		old := false
		for _, e := range out.StackEvents {
			id := aws.ToString(e.EventId)
			if seen[id] || token != "" && aws.ToString(e.ClientRequestToken) != token {
				old = true
				continue
			}
			seen[id] = true
			fresh = append(fresh, e)
		}
		if old {
			break // newest first: the rest is older still
		}
	}
	slices.Reverse(fresh)
	return fresh, nil
}

// deleteStack deletes the stack and waits until it is gone.
func (c *clients) deleteStack(ctx context.Context, o Options, name string) error {
	token := newToken()
	if _, err := c.cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(name), ClientRequestToken: aws.String(token)}); err != nil {
		return explain(err, "cloudformation:DeleteStack", "")
	}
	_, err := c.waitStackGone(ctx, o, name, token)
	return err
}

// waitStackGone waits for a deletion to finish.
func (c *clients) waitStackGone(ctx context.Context, o Options, name, token string) (bool, error) {
	st, err := c.waitStack(ctx, o, name, token)
	if err != nil {
		return false, err
	}
	if st != nil {
		return false, fmt.Errorf("the stack %s is still there (%s)", name, st.StackStatus)
	}
	return true, nil
}

func outputs(st *cftypes.Stack) map[string]string {
	out := map[string]string{}
	for _, o := range st.Outputs {
		out[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return out
}

func isNotExist(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist")
}

func isNoUpdate(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "No updates are to be performed")
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return "fluidity-" + hex.EncodeToString(b[:])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
