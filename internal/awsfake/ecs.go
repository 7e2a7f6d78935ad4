package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ECS limits, from the API reference.
const (
	ecsMaxCount        = 10
	ecsMaxStartedBy    = 128
	ecsMaxClientToken  = 64
	ecsMaxTags         = 50
	ecsMaxTagKey       = 128
	ecsMaxTagValue     = 256
	ecsMaxDescribe     = 100
	ecsMaxListResults  = 100
	ecsMaxReason       = 255
	ecsMaxSubnets      = 16
	ecsMaxGroups       = 5
	ecsMaxOverrideSize = 8192

	taskCPU    = "256"
	taskMemory = "512"
)

// epoch is a time encoded as ECS encodes timestamps: seconds since the
// epoch, as a JSON number with milliseconds.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(e).UnixMilli())/1000, 'f', 3, 64)), nil
}

// at returns t as an epoch, or nil for the zero time.
func at(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

type ecsTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type ecsKeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type ecsContainerOverride struct {
	Name        string        `json:"name,omitempty"`
	Command     []string      `json:"command,omitempty"`
	Environment []ecsKeyValue `json:"environment,omitempty"`
}

type ecsTaskOverride struct {
	ContainerOverrides []ecsContainerOverride `json:"containerOverrides"`
}

type ecsAwsvpcConfiguration struct {
	Subnets        []string `json:"subnets"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	AssignPublicIP string   `json:"assignPublicIp,omitempty"`
}

type ecsCapacityProviderItem struct {
	CapacityProvider string `json:"capacityProvider"`
	Weight           int    `json:"weight"`
	Base             int    `json:"base"`
}

type ecsRunTaskInput struct {
	Cluster                  string                    `json:"cluster,omitempty"`
	TaskDefinition           string                    `json:"taskDefinition"`
	LaunchType               string                    `json:"launchType,omitempty"`
	CapacityProviderStrategy []ecsCapacityProviderItem `json:"capacityProviderStrategy,omitempty"`
	Count                    *int                      `json:"count,omitempty"`
	StartedBy                string                    `json:"startedBy,omitempty"`
	ClientToken              string                    `json:"clientToken,omitempty"`
	Group                    string                    `json:"group,omitempty"`
	Tags                     []ecsTag                  `json:"tags,omitempty"`
	NetworkConfiguration     *struct {
		AwsvpcConfiguration *ecsAwsvpcConfiguration `json:"awsvpcConfiguration,omitempty"`
	} `json:"networkConfiguration,omitempty"`
	Overrides            *ecsTaskOverride `json:"overrides,omitempty"`
	EnableExecuteCommand bool             `json:"enableExecuteCommand,omitempty"`
	PlatformVersion      string           `json:"platformVersion,omitempty"`
	PropagateTags        string           `json:"propagateTags,omitempty"`
}

// runToken is what RunTask remembers of a client token.
type runToken struct {
	params string // the request without its token, as JSON
	tasks  []*task
}

type ecsFailure struct {
	Arn    string `json:"arn,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

type ecsAttachment struct {
	ID      string        `json:"id"`
	Type    string        `json:"type"`
	Status  string        `json:"status"`
	Details []ecsKeyValue `json:"details"`
}

type ecsNetworkInterface struct {
	AttachmentID       string `json:"attachmentId"`
	PrivateIPv4Address string `json:"privateIpv4Address"`
}

type ecsContainer struct {
	ContainerArn      string                `json:"containerArn"`
	TaskArn           string                `json:"taskArn"`
	Name              string                `json:"name"`
	Image             string                `json:"image"`
	RuntimeID         string                `json:"runtimeId,omitempty"`
	LastStatus        string                `json:"lastStatus"`
	NetworkInterfaces []ecsNetworkInterface `json:"networkInterfaces"`
	HealthStatus      string                `json:"healthStatus"`
	CPU               string                `json:"cpu"`
	ExitCode          *int                  `json:"exitCode,omitempty"`
}

type ecsTaskOut struct {
	Attachments          []ecsAttachment `json:"attachments"`
	AvailabilityZone     string          `json:"availabilityZone"`
	CapacityProviderName string          `json:"capacityProviderName,omitempty"`
	ClusterArn           string          `json:"clusterArn"`
	Connectivity         string          `json:"connectivity,omitempty"`
	ConnectivityAt       *epoch          `json:"connectivityAt,omitempty"`
	Containers           []ecsContainer  `json:"containers"`
	CPU                  string          `json:"cpu"`
	CreatedAt            *epoch          `json:"createdAt,omitempty"`
	DesiredStatus        string          `json:"desiredStatus"`
	EnableExecuteCommand bool            `json:"enableExecuteCommand"`
	EphemeralStorage     struct {
		SizeInGiB int `json:"sizeInGiB"`
	} `json:"ephemeralStorage"`
	ExecutionStoppedAt *epoch          `json:"executionStoppedAt,omitempty"`
	Group              string          `json:"group"`
	HealthStatus       string          `json:"healthStatus"`
	LastStatus         string          `json:"lastStatus"`
	LaunchType         string          `json:"launchType"`
	Memory             string          `json:"memory"`
	Overrides          ecsTaskOverride `json:"overrides"`
	PlatformFamily     string          `json:"platformFamily"`
	PlatformVersion    string          `json:"platformVersion"`
	PullStartedAt      *epoch          `json:"pullStartedAt,omitempty"`
	PullStoppedAt      *epoch          `json:"pullStoppedAt,omitempty"`
	StartedAt          *epoch          `json:"startedAt,omitempty"`
	StartedBy          string          `json:"startedBy,omitempty"`
	StopCode           string          `json:"stopCode,omitempty"`
	StoppedAt          *epoch          `json:"stoppedAt,omitempty"`
	StoppedReason      string          `json:"stoppedReason,omitempty"`
	StoppingAt         *epoch          `json:"stoppingAt,omitempty"`
	Tags               []ecsTag        `json:"tags,omitempty"`
	TaskArn            string          `json:"taskArn"`
	TaskDefinitionArn  string          `json:"taskDefinitionArn"`
	Version            int64           `json:"version"`
}

// ecsOp returns the handler of an ECS operation, or nil.
func (c *Cloud) ecsOp(op string) jsonOp {
	switch op {
	case "RunTask":
		return c.ecsRunTask
	case "DescribeTasks":
		return c.ecsDescribeTasks
	case "ListTasks":
		return c.ecsListTasks
	case "StopTask":
		return c.ecsStopTask
	case "TagResource":
		return c.ecsTagResource
	case "UntagResource":
		return c.ecsUntagResource
	case "ListTagsForResource":
		return c.ecsListTagsForResource
	}
	return nil
}

// AddCluster creates an ECS cluster.
func (c *Cloud) AddCluster(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clusters[name] = true
}

// AddTaskDefinition registers a task definition revision, such as
// "fluidity-exit:3" (a bare family is revision 1). Its one container is
// named "exit". RunTask may name it by family (the latest revision),
// family:revision or ARN.
func (c *Cloud) AddTaskDefinition(familyRevision string) {
	family, rev, found := strings.Cut(familyRevision, ":")
	n := 1
	if found {
		var err error
		if n, err = strconv.Atoi(rev); err != nil || n < 1 {
			c.tb.Fatalf("awsfake: AddTaskDefinition: bad revision in %q", familyRevision)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.taskDefs[family], n) {
		c.taskDefs[family] = append(c.taskDefs[family], n)
		slices.Sort(c.taskDefs[family])
	}
}

// AddSubnet creates a subnet RunTask may place tasks in.
func (c *Cloud) AddSubnet(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subnets[id]; !ok {
		c.subnets[id] = len(c.subnets)
	}
}

// AddSecurityGroup creates a security group RunTask may give tasks.
func (c *Cloud) AddSecurityGroup(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[id] = true
}

func (c *Cloud) clusterARN(name string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", c.Region, c.Account, name)
}

func (c *Cloud) taskDefinitionARN(family string, rev int) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%d", c.Region, c.Account, family, rev)
}

// clusterLocked resolves a cluster name or ARN; "" is "default".
func (c *Cloud) clusterLocked(nameOrARN string) (string, *apiError) {
	name := nameOrARN
	if name == "" {
		name = "default"
	}
	if rest, ok := strings.CutPrefix(name, fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/", c.Region, c.Account)); ok {
		name = rest
	}
	if !c.clusters[name] {
		return "", errorf(400, "ClusterNotFoundException", "Cluster not found.")
	}
	return name, nil
}

// taskDefinitionLocked resolves a family, family:revision or ARN.
func (c *Cloud) taskDefinitionLocked(ref string) (string, int, bool) {
	ref = strings.TrimPrefix(ref, fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/", c.Region, c.Account))
	family, rev, found := strings.Cut(ref, ":")
	revs := c.taskDefs[family]
	if len(revs) == 0 {
		return "", 0, false
	}
	if !found {
		return family, revs[len(revs)-1], true
	}
	n, err := strconv.Atoi(rev)
	if err != nil || !slices.Contains(revs, n) {
		return "", 0, false
	}
	return family, n, true
}

func invalidParameter(format string, args ...any) *apiError {
	return errorf(400, "InvalidParameterException", format, args...)
}

func validStartedBy(s string) bool {
	if len(s) > ecsMaxStartedBy {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '/') {
			return false
		}
	}
	return true
}

func validClientToken(s string) bool {
	if len(s) > ecsMaxClientToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// checkTags checks tags against ECS's limits, given how many the resource
// already has that they do not replace.
func checkTags(tags []ecsTag, existing map[string]string) *apiError {
	merged := maps.Clone(existing)
	if merged == nil {
		merged = map[string]string{}
	}
	for _, tag := range tags {
		switch k := utf8.RuneCountInString(tag.Key); {
		case k == 0 || k > ecsMaxTagKey:
			return invalidParameter("Tag keys must be between 1 and %d characters.", ecsMaxTagKey)
		case utf8.RuneCountInString(tag.Value) > ecsMaxTagValue:
			return invalidParameter("Tag values must be at most %d characters.", ecsMaxTagValue)
		case strings.HasPrefix(strings.ToLower(tag.Key), "aws:"):
			return invalidParameter("Tag keys beginning with 'aws:' are reserved for AWS use.")
		}
		merged[tag.Key] = tag.Value
	}
	if len(merged) > ecsMaxTags {
		return invalidParameter("The number of tags on the resource would exceed the limit of %d.", ecsMaxTags)
	}
	return nil
}

func (c *Cloud) ecsRunTask(id identity, body []byte) (any, *apiError) {
	var in ecsRunTaskInput
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	cluster, e := c.clusterLocked(in.Cluster)
	if e != nil {
		return nil, e
	}
	family, rev, ok := c.taskDefinitionLocked(in.TaskDefinition)
	if !ok {
		return nil, invalidParameter("TaskDefinition not found.")
	}
	count := 1
	if in.Count != nil {
		count = *in.Count
	}
	if count < 1 || count > ecsMaxCount {
		return nil, invalidParameter("count must be between 1 and %d.", ecsMaxCount)
	}
	if !validStartedBy(in.StartedBy) {
		return nil, invalidParameter("startedBy may contain up to %d letters (uppercase and lowercase), numbers, hyphens (-), forward slashes (/) and underscores (_).", ecsMaxStartedBy)
	}
	if !validClientToken(in.ClientToken) {
		return nil, invalidParameter("clientToken may contain up to %d characters in the range 33-126.", ecsMaxClientToken)
	}
	if e := checkTags(in.Tags, nil); e != nil {
		return nil, e
	}
	launchType, provider := in.LaunchType, ""
	switch {
	case launchType != "" && len(in.CapacityProviderStrategy) > 0:
		return nil, invalidParameter("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.")
	case len(in.CapacityProviderStrategy) > 0:
		for _, item := range in.CapacityProviderStrategy {
			if item.CapacityProvider != "FARGATE" && item.CapacityProvider != "FARGATE_SPOT" {
				return nil, invalidParameter("The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.")
			}
			if provider == "" && (item.Base > 0 || item.Weight > 0) {
				provider = item.CapacityProvider
			}
		}
		if provider == "" {
			return nil, invalidParameter("The capacity provider strategy must have at least one capacity provider with a weight greater than zero.")
		}
		launchType = "FARGATE"
	case launchType == "FARGATE":
	default: // EC2 or EXTERNAL, explicitly or as the cluster's default
		return nil, invalidParameter("No Container Instances were found in your cluster.")
	}
	var vpc *ecsAwsvpcConfiguration
	if in.NetworkConfiguration != nil {
		vpc = in.NetworkConfiguration.AwsvpcConfiguration
	}
	if vpc == nil {
		return nil, invalidParameter("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	if len(vpc.Subnets) == 0 {
		return nil, invalidParameter("subnets can not be empty.")
	}
	if len(vpc.Subnets) > ecsMaxSubnets {
		return nil, invalidParameter("subnets can have at most %d items.", ecsMaxSubnets)
	}
	if len(vpc.SecurityGroups) > ecsMaxGroups {
		return nil, invalidParameter("securityGroups can have at most %d items.", ecsMaxGroups)
	}
	for _, s := range vpc.Subnets {
		if _, ok := c.subnets[s]; !ok {
			return nil, invalidParameter("Error retrieving subnet information for [%s]: The subnet ID '%s' does not exist (ErrorCode: InvalidSubnetID.NotFound)", s, s)
		}
	}
	for _, g := range vpc.SecurityGroups {
		if !c.groups[g] {
			return nil, invalidParameter("Error retrieving security group information for [%s]: The security group '%s' does not exist (ErrorCode: InvalidGroup.NotFound)", g, g)
		}
	}
	switch vpc.AssignPublicIP {
	case "", "ENABLED", "DISABLED":
	default:
		return nil, invalidParameter("assignPublicIp must be ENABLED or DISABLED.")
	}
	overrides := ecsTaskOverride{ContainerOverrides: []ecsContainerOverride{}}
	env := map[string]string{}
	if in.Overrides != nil {
		if b, _ := json.Marshal(in.Overrides); len(b) > ecsMaxOverrideSize {
			return nil, invalidParameter("Container Overrides length must be at most %d", ecsMaxOverrideSize)
		}
		for _, o := range in.Overrides.ContainerOverrides {
			if o.Name != containerName {
				return nil, invalidParameter("Override for container named %s is not a container in the TaskDefinition.", o.Name)
			}
			for _, kv := range o.Environment {
				env[kv.Name] = kv.Value
			}
		}
		overrides.ContainerOverrides = append(overrides.ContainerOverrides, in.Overrides.ContainerOverrides...)
	}

	var params string
	if in.ClientToken != "" {
		// The parameters compared are the request's, as ECS resolves them.
		p := in
		p.ClientToken = ""
		p.Cluster = cluster
		p.TaskDefinition = c.taskDefinitionARN(family, rev)
		p.Count = &count
		b, _ := json.Marshal(p)
		params = string(b)
		if prev := c.tokens[in.ClientToken]; prev != nil {
			if prev.params != params {
				arns := make([]string, len(prev.tasks))
				for i, t := range prev.tasks {
					arns[i] = t.ARN
				}
				e := errorf(400, "ConflictException", "The clientToken is already in use with a different RunTask request.")
				e.extra = map[string]any{"resourceIds": arns}
				return nil, e
			}
			return c.runTaskOutputLocked(prev.tasks), nil
		}
	}
	if c.runFailure != "" {
		return map[string]any{"tasks": []any{}, "failures": []ecsFailure{{Reason: c.runFailure}}}, nil
	}

	group := in.Group
	if group == "" {
		group = "family:" + family
	}
	tags := map[string]string{}
	for _, tag := range in.Tags {
		tags[tag.Key] = tag.Value
	}
	def := c.containerDefs[fmt.Sprintf("%s:%d", family, rev)]
	var created []*task
	for range count {
		t := &task{
			Task: Task{
				Cluster:        c.clusterARN(cluster),
				TaskDefinition: c.taskDefinitionARN(family, rev),
				StartedBy:      in.StartedBy,
				ClientToken:    in.ClientToken,
				Tags:           maps.Clone(tags),
				Subnets:        slices.Clone(vpc.Subnets),
				SecurityGroups: slices.Clone(vpc.SecurityGroups),
				AssignPublicIP: vpc.AssignPublicIP == "ENABLED",
				Env:            maps.Clone(env),
				Command:        slices.Clone(def.command),
				DefinitionEnv:  maps.Clone(def.env),
				Image:          def.image,
				Caller:         id.arn,
			},
			family:      family,
			revision:    rev,
			clusterName: cluster,
			launchType:  launchType,
			provider:    provider,
			group:       group,
			overrides:   overrides,
		}
		c.newTaskLocked(t)
		created = append(created, t)
	}
	if in.ClientToken != "" {
		c.tokens[in.ClientToken] = &runToken{params: params, tasks: created}
	}
	return c.runTaskOutputLocked(created), nil
}

func (c *Cloud) runTaskOutputLocked(ts []*task) any {
	out := make([]ecsTaskOut, len(ts))
	for i, t := range ts {
		out[i] = c.ecsTaskLocked(t, false)
	}
	return map[string]any{"tasks": out, "failures": []ecsFailure{}}
}

// ecsTaskLocked renders t as DescribeTasks does.
func (c *Cloud) ecsTaskLocked(t *task, withTags bool) ecsTaskOut {
	details := []ecsKeyValue{{Name: "subnetId", Value: t.subnet}}
	if t.attachmentStatus != "PRECREATED" {
		details = append(details,
			ecsKeyValue{Name: "networkInterfaceId", Value: t.ENI},
			ecsKeyValue{Name: "macAddress", Value: t.mac},
			ecsKeyValue{Name: "privateDnsName", Value: privateDNSName(t.PrivateIP, c.Region)},
			ecsKeyValue{Name: "privateIPv4Address", Value: t.PrivateIP})
	}
	ctr := ecsContainer{
		ContainerArn: t.containerARN,
		TaskArn:      t.ARN,
		Name:         containerName,
		Image:        containerImage(c.Account, c.Region, t.family),
		LastStatus:   containerStatus(t),
		HealthStatus: "UNKNOWN",
		CPU:          "0",
	}
	if ctr.LastStatus != statusPending {
		ctr.RuntimeID = t.runtimeID
	}
	if t.ctrGone && t.ctr != nil && t.ctr.ExitCode != nil {
		code := t.ctr.ExitCode()
		ctr.ExitCode = &code
	}
	if t.attachmentStatus != "PRECREATED" {
		ctr.NetworkInterfaces = []ecsNetworkInterface{{AttachmentID: t.attachmentID, PrivateIPv4Address: t.PrivateIP}}
	} else {
		ctr.NetworkInterfaces = []ecsNetworkInterface{}
	}
	out := ecsTaskOut{
		Attachments:          []ecsAttachment{{ID: t.attachmentID, Type: "ElasticNetworkInterface", Status: t.attachmentStatus, Details: details}},
		AvailabilityZone:     c.Region + "a",
		CapacityProviderName: t.provider,
		ClusterArn:           t.Cluster,
		ConnectivityAt:       at(t.connectivityAt),
		Containers:           []ecsContainer{ctr},
		CPU:                  taskCPU,
		CreatedAt:            at(t.CreatedAt),
		DesiredStatus:        t.DesiredStatus,
		ExecutionStoppedAt:   at(t.executionStoppedAt),
		Group:                t.group,
		HealthStatus:         "UNKNOWN",
		LastStatus:           t.LastStatus,
		LaunchType:           t.launchType,
		Memory:               taskMemory,
		Overrides:            t.overrides,
		PlatformFamily:       "Linux",
		PlatformVersion:      "1.4.0",
		PullStartedAt:        at(t.pullStartedAt),
		PullStoppedAt:        at(t.pullStoppedAt),
		StartedAt:            at(t.StartedAt),
		StartedBy:            t.StartedBy,
		StopCode:             t.StopCode,
		StoppedAt:            at(t.StoppedAt),
		StoppedReason:        t.StoppedReason,
		StoppingAt:           at(t.StoppingAt),
		TaskArn:              t.ARN,
		TaskDefinitionArn:    t.TaskDefinition,
		Version:              t.version,
	}
	out.EphemeralStorage.SizeInGiB = 20
	if !t.connectivityAt.IsZero() {
		out.Connectivity = "CONNECTED"
	}
	if withTags {
		out.Tags = sortedTags(t.Tags)
	}
	return out
}

// containerStatus is the lastStatus ECS reports for t's container.
func containerStatus(t *task) string {
	switch t.LastStatus {
	case statusProvisioning, statusPending:
		return statusPending
	case statusRunning:
		return statusRunning
	case statusStopping:
		if t.ctrGone {
			return statusStopped
		}
		return statusRunning
	default:
		return statusStopped
	}
}

func containerImage(account, region, family string) string {
	return fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com/%s:latest", account, region, family)
}

func privateDNSName(ip, region string) string {
	return "ip-" + strings.ReplaceAll(ip, ".", "-") + "." + dnsSuffix(region)
}

// dnsSuffix is the domain of a VPC's private DNS names.
func dnsSuffix(region string) string {
	if region == "us-east-1" {
		return "ec2.internal"
	}
	return region + ".compute.internal"
}

func sortedTags(m map[string]string) []ecsTag {
	tags := make([]ecsTag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		tags = append(tags, ecsTag{Key: k, Value: m[k]})
	}
	return tags
}

func (c *Cloud) ecsDescribeTasks(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Cluster string   `json:"cluster"`
		Tasks   []string `json:"tasks"`
		Include []string `json:"include"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cluster, e := c.clusterLocked(in.Cluster)
	if e != nil {
		return nil, e
	}
	if len(in.Tasks) == 0 {
		return nil, invalidParameter("Tasks cannot be empty.")
	}
	if len(in.Tasks) > ecsMaxDescribe {
		return nil, invalidParameter("Tasks cannot have more than %d elements.", ecsMaxDescribe)
	}
	withTags := slices.Contains(in.Include, "TAGS")
	tasks, failures := []ecsTaskOut{}, []ecsFailure{}
	for _, ref := range in.Tasks {
		t := c.findLocked(ref)
		if t == nil || t.clusterName != cluster {
			failures = append(failures, ecsFailure{Arn: ref, Reason: "MISSING"})
			continue
		}
		tasks = append(tasks, c.ecsTaskLocked(t, withTags))
	}
	return map[string]any{"tasks": tasks, "failures": failures}, nil
}

func (c *Cloud) ecsListTasks(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Cluster       string `json:"cluster"`
		Family        string `json:"family"`
		StartedBy     string `json:"startedBy"`
		ServiceName   string `json:"serviceName"`
		DesiredStatus string `json:"desiredStatus"`
		LaunchType    string `json:"launchType"`
		MaxResults    *int   `json:"maxResults"`
		NextToken     string `json:"nextToken"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cluster, e := c.clusterLocked(in.Cluster)
	if e != nil {
		return nil, e
	}
	limit := ecsMaxListResults
	if in.MaxResults != nil {
		limit = *in.MaxResults
		if limit < 1 || limit > ecsMaxListResults {
			return nil, invalidParameter("maxResults must be between 1 and %d.", ecsMaxListResults)
		}
	}
	desired := in.DesiredStatus
	switch desired {
	case "":
		desired = statusRunning
	case statusRunning, statusStopped:
	case statusPending:
		// ECS accepts PENDING but never sets a desired status to it.
	default:
		return nil, invalidParameter("desiredStatus must be RUNNING, PENDING or STOPPED.")
	}
	if in.ServiceName != "" {
		return nil, errorf(400, "ServiceNotFoundException", "Service not found.")
	}
	start := 0
	if in.NextToken != "" {
		n, ok := decodeListToken(in.NextToken)
		if !ok {
			return nil, invalidParameter("Invalid nextToken.")
		}
		start = n
	}
	arns := []string{}
	next := ""
	for i := start; i < len(c.tasks); i++ {
		t := c.tasks[i]
		if t.clusterName != cluster || t.DesiredStatus != desired ||
			(in.StartedBy != "" && t.StartedBy != in.StartedBy) ||
			(in.Family != "" && t.family != in.Family) ||
			(in.LaunchType != "" && t.launchType != in.LaunchType) {
			continue
		}
		if len(arns) == limit {
			next = encodeListToken(i)
			break
		}
		arns = append(arns, t.ARN)
	}
	out := map[string]any{"taskArns": arns}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

// List tokens are opaque to callers: they name the position of the next
// task in the Cloud's list.
func encodeListToken(i int) string {
	return base64.StdEncoding.EncodeToString([]byte("awsfake-tasks:" + strconv.Itoa(i)))
}

func decodeListToken(s string) (int, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "awsfake-tasks:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

func (c *Cloud) ecsStopTask(_ identity, body []byte) (any, *apiError) {
	var in struct {
		Cluster string `json:"cluster"`
		Task    string `json:"task"`
		Reason  string `json:"reason"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cluster, e := c.clusterLocked(in.Cluster)
	if e != nil {
		return nil, e
	}
	if utf8.RuneCountInString(in.Reason) > ecsMaxReason {
		return nil, invalidParameter("Reason cannot be longer than %d characters.", ecsMaxReason)
	}
	t := c.findLocked(in.Task)
	if t == nil || t.clusterName != cluster {
		return nil, invalidParameter("The referenced task was not found.")
	}
	c.stopLocked(t, "UserInitiated", in.Reason)
	return map[string]any{"task": c.ecsTaskLocked(t, false)}, nil
}

// taggedLocked resolves a task ARN for the tagging operations.
func (c *Cloud) taggedLocked(arn string) (*task, *apiError) {
	if !strings.HasPrefix(arn, "arn:") {
		return nil, invalidParameter("Invalid resource ARN.")
	}
	t := c.findLocked(arn)
	if t == nil {
		return nil, errorf(400, "ResourceNotFoundException", "The specified resource could not be found.")
	}
	return t, nil
}

func (c *Cloud) ecsTagResource(_ identity, body []byte) (any, *apiError) {
	var in struct {
		ResourceArn string   `json:"resourceArn"`
		Tags        []ecsTag `json:"tags"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, e := c.taggedLocked(in.ResourceArn)
	if e != nil {
		return nil, e
	}
	if e := checkTags(in.Tags, t.Tags); e != nil {
		return nil, e
	}
	if t.Tags == nil {
		t.Tags = map[string]string{}
	}
	for _, tag := range in.Tags {
		t.Tags[tag.Key] = tag.Value
	}
	c.touchLocked(t)
	return struct{}{}, nil
}

func (c *Cloud) ecsUntagResource(_ identity, body []byte) (any, *apiError) {
	var in struct {
		ResourceArn string   `json:"resourceArn"`
		TagKeys     []string `json:"tagKeys"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, e := c.taggedLocked(in.ResourceArn)
	if e != nil {
		return nil, e
	}
	for _, k := range in.TagKeys {
		delete(t.Tags, k)
	}
	c.touchLocked(t)
	return struct{}{}, nil
}

func (c *Cloud) ecsListTagsForResource(_ identity, body []byte) (any, *apiError) {
	var in struct {
		ResourceArn string `json:"resourceArn"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, e := c.taggedLocked(in.ResourceArn)
	if e != nil {
		return nil, e
	}
	return map[string]any{"tags": sortedTags(t.Tags)}, nil
}
