package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Destroy removes what Deploy made in AWS: any exit task still running,
// both stacks, the image repository, the certificate parameter (or secret)
// and the daily-limit ledgers. confirm is asked first, with a description
// of what will go; Destroy does nothing unless it says yes. It returns what
// it left, and why.
func Destroy(ctx context.Context, o Options, confirm func(what string) bool) (left []string, err error) {
	c, step, err := o.begin(ctx)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("the deployment %q in %s: the stacks %s and %s (the exit's network, cluster, roles and logs; the control plane's function, URL and schedule), "+
		"the image repository %s, the exit's certificates %s and any exit task still running",
		o.Name, c.region, o.controlStack(), o.exitStack(), o.repository(), o.certsName())
	if !confirm(what) {
		return nil, errors.New("nothing was removed")
	}

	if exit, err := c.describeStack(ctx, o.exitStack()); err != nil {
		return nil, err
	} else if exit != nil {
		if err := c.stopTasks(ctx, o, outputs(exit)["Cluster"], step); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{o.controlStack(), o.exitStack()} {
		st, err := c.describeStack(ctx, name)
		if err != nil {
			return nil, err
		}
		if st == nil {
			step("the stack %s is not there", name)
			continue
		}
		step("deleting the stack %s", name)
		if err := c.deleteStack(ctx, o, name); err != nil {
			return nil, err
		}
	}

	_, err = c.ecr.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(o.repository()), Force: true})
	var noRepo *ecrtypes.RepositoryNotFoundException
	switch {
	case errors.As(err, &noRepo):
	case err != nil:
		return nil, explain(err, "ecr:DeleteRepository", "")
	default:
		step("deleted the image repository %s", o.repository())
	}

	_, err = c.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(o.certsName())})
	var noParam *ssmtypes.ParameterNotFound
	switch {
	case errors.As(err, &noParam):
	case err != nil:
		return nil, explain(err, "ssm:DeleteParameter", "")
	default:
		step("deleted the parameter %s", o.certsName())
	}
	_, err = c.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(o.certsName()[1:]), ForceDeleteWithoutRecovery: aws.Bool(true)})
	var noSecret *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &noSecret):
	case err != nil:
		return nil, explain(err, "secretsmanager:DeleteSecret", "")
	default:
		step("deleted the secret %s", o.certsName()[1:])
	}

	ledgers, err := c.deleteLedgers(ctx, o)
	if err != nil {
		return nil, err
	}
	if ledgers > 0 {
		step("deleted %d daily-limit ledgers", ledgers)
	}
	left = append(left, fmt.Sprintf("%s: this machine's copy of the deployment's certificates and the agent's configuration, "+
		"kept so that a new deployment trusts the same agents; delete the directory if you want them gone", o.dir()))
	return left, nil
}

// stopTasks stops every task of the cluster and waits until none runs: a
// cluster with tasks cannot be deleted.
func (c *clients) stopTasks(ctx context.Context, o Options, cluster string, step func(string, ...any)) error {
	if cluster == "" {
		return nil
	}
	client := ecs.NewFromConfig(c.cfg)
	for {
		var arns []string
		pages := ecs.NewListTasksPaginator(client, &ecs.ListTasksInput{Cluster: aws.String(cluster), DesiredStatus: ecstypes.DesiredStatusRunning})
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			var nf *ecstypes.ClusterNotFoundException
			if errors.As(err, &nf) {
				return nil
			}
			if err != nil {
				return explain(err, "ecs:ListTasks", "")
			}
			arns = append(arns, out.TaskArns...)
		}
		if len(arns) == 0 {
			return c.waitTasksStopped(ctx, o, client, cluster)
		}
		for _, arn := range arns {
			if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(cluster), Task: aws.String(arn), Reason: aws.String("fluidity aws destroy")}); err != nil {
				return explain(err, "ecs:StopTask", "")
			}
			step("stopped the exit task %s", arn)
		}
	}
}

// waitTasksStopped waits until no task of the cluster is still stopping.
func (c *clients) waitTasksStopped(ctx context.Context, o Options, client *ecs.Client, cluster string) error {
	for {
		out, err := client.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(cluster), DesiredStatus: ecstypes.DesiredStatusStopped})
		if err != nil {
			return explain(err, "ecs:ListTasks", "")
		}
		busy := false
		if len(out.TaskArns) > 0 {
			d, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: out.TaskArns[:min(len(out.TaskArns), 100)]})
			if err != nil {
				return explain(err, "ecs:DescribeTasks", "")
			}
			for _, t := range d.Tasks {
				busy = busy || aws.ToString(t.LastStatus) != "STOPPED"
			}
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.PollInterval):
		}
	}
}

// deleteLedgers deletes the daily-limit ledgers of the deployment.
func (c *clients) deleteLedgers(ctx context.Context, o Options) (int, error) {
	n := 0
	pages := ssm.NewGetParametersByPathPaginator(c.ssm, &ssm.GetParametersByPathInput{Path: aws.String("/fluidity/" + o.Name + "/usage")})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return n, explain(err, "ssm:GetParametersByPath", "")
		}
		for _, p := range out.Parameters {
			if _, err := c.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: p.Name}); err != nil {
				return n, explain(err, "ssm:DeleteParameter", "")
			}
			n++
		}
	}
	return n, nil
}
