package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"fluidity/internal/cfn"
)

const cfnNamespace = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

// stack is a CloudFormation stack; guarded by Cloud.mu.
type stack struct {
	name, id      string
	status        string
	reason        string
	created       time.Time
	updated       time.Time
	body          string
	params        map[string]string
	tags          map[string]string
	eval          *cfn.Stack
	resources     map[string]*stackResource // by logical ID
	physicalIDs   map[string]string         // by logical ID, what Ref gives
	outputs       []cfn.OutputValue
	events        []stackEvent // oldest first
	busy          bool         // an operation is in progress
	lastOperation string       // the client request token of the last operation
}

// stackResource is a resource a stack made.
type stackResource struct {
	logicalID, typ, physicalID string
	attrs                      map[string]any
	props                      map[string]any
}

type stackEvent struct {
	id, logicalID, physicalID, typ, status, reason, token string
	at                                                    time.Time
}

// Function is a Lambda function a stack made.
type Function struct {
	Name, ARN, ImageURI, Role string
	Command                   []string
	Env                       map[string]string
	ReservedConcurrency       int // 0 for none
}

// containerDef is what a task definition made by a stack runs.
type containerDef struct {
	command []string
	env     map[string]string
	image   string
}

// FailResource makes the creation or update of the stack resource
// logicalID fail with reason, which rolls the stack back; "" clears it.
func (c *Cloud) FailResource(logicalID, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason == "" {
		delete(c.failResources, logicalID)
		return
	}
	c.failResources[logicalID] = reason
}

// StackStatus is a stack's status, and whether it exists.
func (c *Cloud) StackStatus(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.stacks[name]
	if !ok {
		return "", false
	}
	return s.status, true
}

// LambdaFunction returns a function a stack made.
func (c *Cloud) LambdaFunction(name string) (Function, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.functions[name]
	if !ok {
		return Function{}, false
	}
	f.Env = cloneMap(f.Env)
	f.Command = slices.Clone(f.Command)
	return *f, ok
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// cfnOp returns the handler of a CloudFormation operation, or nil.
func (c *Cloud) cfnOp(op string) queryOp {
	switch op {
	case "CreateStack":
		return c.cfnCreateStack
	case "UpdateStack":
		return c.cfnUpdateStack
	case "DeleteStack":
		return c.cfnDeleteStack
	case "DescribeStacks":
		return c.cfnDescribeStacks
	case "DescribeStackEvents":
		return c.cfnDescribeStackEvents
	}
	return nil
}

func validation(format string, args ...any) *apiError {
	return errorf(400, "ValidationError", format, args...)
}

// stackArg reads the stack a request names, by name or ID.
func (c *Cloud) stackLocked(nameOrID string) *stack {
	if s, ok := c.stacks[nameOrID]; ok {
		return s
	}
	for _, s := range c.stacks {
		if s.id == nameOrID {
			return s
		}
	}
	return nil
}

// parseStackInput reads the template, parameters, capabilities and tags of
// a CreateStack or UpdateStack, and evaluates the template.
func (c *Cloud) parseStackInput(name string, form url.Values) (*cfn.Template, map[string]string, map[string]string, *apiError) {
	body := form.Get("TemplateBody")
	if body == "" {
		return nil, nil, nil, validation("Either Template URL or Template Body must be specified.")
	}
	tpl, err := cfn.Parse(name, []byte(body))
	if err != nil {
		return nil, nil, nil, validation("Template format error: %v", err)
	}
	params := map[string]string{}
	for _, m := range members(form, "Parameters") {
		params[m["ParameterKey"]] = m["ParameterValue"]
	}
	tags := map[string]string{}
	for _, m := range members(form, "Tags") {
		tags[m["Key"]] = m["Value"]
	}
	var caps []string
	for k, vs := range form {
		if strings.HasPrefix(k, "Capabilities.member.") {
			caps = append(caps, vs[0])
		}
	}
	need := ""
	for _, r := range tpl.Resources {
		if strings.HasPrefix(r.Type, "AWS::IAM::") {
			if need == "" {
				need = "CAPABILITY_IAM"
			}
			for _, k := range []string{"RoleName", "ManagedPolicyName", "UserName", "GroupName"} {
				if _, ok := r.Properties[k]; ok {
					need = "CAPABILITY_NAMED_IAM"
				}
			}
		}
	}
	if need != "" && !slices.Contains(caps, need) && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
		return nil, nil, nil, errorf(400, "InsufficientCapabilitiesException", "Requires capabilities : [%s]", need)
	}
	return tpl, params, tags, nil
}

func (c *Cloud) cfnEnv(s *stack) cfn.Env {
	return cfn.Env{
		Parameters: s.params, Region: c.Region, AccountID: c.Account, StackName: s.name, StackID: s.id,
		AZs:         []string{c.Region + "a", c.Region + "b", c.Region + "c"},
		PhysicalIDs: s.physicalIDs,
		Attribute: func(logicalID, name string) (any, error) {
			r, ok := s.resources[logicalID]
			if !ok {
				return nil, fmt.Errorf("resource %s is not created", logicalID)
			}
			v, ok := r.attrs[name]
			if !ok {
				return nil, fmt.Errorf("resource %s (%s) has no attribute %s in the fake", logicalID, r.typ, name)
			}
			return v, nil
		},
	}
}

func (c *Cloud) cfnCreateStack(_ identity, form url.Values) (any, *apiError) {
	name := form.Get("StackName")
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.stackLocked(name); old != nil && old.status != "DELETE_COMPLETE" {
		return nil, errorf(400, "AlreadyExistsException", "Stack [%s] already exists", name)
	}
	tpl, params, tags, e := c.parseStackInput(name, form)
	if e != nil {
		return nil, e
	}
	s := &stack{
		name: name, id: fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%s", c.Region, c.Account, name, newUUID()),
		created: c.now(), body: form.Get("TemplateBody"), params: params, tags: tags,
		resources: map[string]*stackResource{}, physicalIDs: map[string]string{},
	}
	ev, err := cfn.Evaluate(tpl, c.cfnEnv(s))
	if err != nil {
		return nil, validation("%v", err)
	}
	s.eval = ev
	c.stacks[name] = s
	token := form.Get("ClientRequestToken")
	c.setStackStatusLocked(s, "CREATE_IN_PROGRESS", "User Initiated", token)
	c.startStackOpLocked(s, func() { c.createStack(s, token) })
	return struct {
		XMLName xml.Name `xml:"r"`
		StackID string   `xml:"StackId"`
	}{StackID: s.id}, nil
}

func (c *Cloud) cfnUpdateStack(_ identity, form url.Values) (any, *apiError) {
	name := form.Get("StackName")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stackLocked(name)
	if s == nil || s.status == "DELETE_COMPLETE" {
		return nil, validation("Stack [%s] does not exist", name)
	}
	if s.busy {
		return nil, validation("Stack:%s is in %s state and can not be updated.", s.id, s.status)
	}
	switch s.status {
	case "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE":
	default:
		return nil, validation("Stack:%s is in %s state and can not be updated.", s.id, s.status)
	}
	tpl, params, tags, e := c.parseStackInput(name, form)
	if e != nil {
		return nil, e
	}
	if form.Get("TemplateBody") == s.body && reflect.DeepEqual(params, s.params) && reflect.DeepEqual(tags, s.tags) {
		return nil, validation("No updates are to be performed.")
	}
	next := &stack{name: s.name, id: s.id, params: params, physicalIDs: s.physicalIDs, resources: s.resources}
	ev, err := cfn.Evaluate(tpl, c.cfnEnv(next))
	if err != nil {
		return nil, validation("%v", err)
	}
	token := form.Get("ClientRequestToken")
	prev := *s
	s.body, s.params, s.tags, s.eval, s.updated = form.Get("TemplateBody"), params, tags, ev, c.now()
	c.setStackStatusLocked(s, "UPDATE_IN_PROGRESS", "User Initiated", token)
	c.startStackOpLocked(s, func() { c.updateStack(s, &prev, token) })
	return struct {
		XMLName xml.Name `xml:"r"`
		StackID string   `xml:"StackId"`
	}{StackID: s.id}, nil
}

func (c *Cloud) cfnDeleteStack(_ identity, form url.Values) (any, *apiError) {
	name := form.Get("StackName")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stackLocked(name)
	if s == nil || s.status == "DELETE_COMPLETE" || s.status == "DELETE_IN_PROGRESS" {
		return struct {
			XMLName xml.Name `xml:"r"`
		}{}, nil
	}
	if s.busy {
		return nil, validation("Stack [%s] cannot be deleted while in status %s", name, s.status)
	}
	token := form.Get("ClientRequestToken")
	c.setStackStatusLocked(s, "DELETE_IN_PROGRESS", "User Initiated", token)
	c.startStackOpLocked(s, func() { c.deleteStack(s, token) })
	return struct {
		XMLName xml.Name `xml:"r"`
	}{}, nil
}

type cfnOutputOut struct {
	OutputKey   string `xml:"OutputKey"`
	OutputValue string `xml:"OutputValue"`
	Description string `xml:"Description,omitempty"`
	ExportName  string `xml:"ExportName,omitempty"`
}

type cfnParamOut struct {
	ParameterKey   string `xml:"ParameterKey"`
	ParameterValue string `xml:"ParameterValue"`
}

type cfnTagOut struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type cfnStackOut struct {
	StackID           string         `xml:"StackId"`
	StackName         string         `xml:"StackName"`
	CreationTime      string         `xml:"CreationTime"`
	LastUpdatedTime   string         `xml:"LastUpdatedTime,omitempty"`
	StackStatus       string         `xml:"StackStatus"`
	StackStatusReason string         `xml:"StackStatusReason,omitempty"`
	Parameters        []cfnParamOut  `xml:"Parameters>member"`
	Outputs           []cfnOutputOut `xml:"Outputs>member"`
	Tags              []cfnTagOut    `xml:"Tags>member"`
	Capabilities      []string       `xml:"Capabilities>member"`
}

func timeXML(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (c *Cloud) cfnDescribeStacks(_ identity, form url.Values) (any, *apiError) {
	name := form.Get("StackName")
	c.mu.Lock()
	defer c.mu.Unlock()
	var list []*stack
	if name != "" {
		s := c.stackLocked(name)
		if s == nil || s.status == "DELETE_COMPLETE" && s.name == name && s.id != name {
			return nil, validation("Stack with id %s does not exist", name)
		}
		list = append(list, s)
	} else {
		for _, s := range c.stacks {
			if s.status != "DELETE_COMPLETE" {
				list = append(list, s)
			}
		}
	}
	out := struct {
		XMLName xml.Name      `xml:"r"`
		Stacks  []cfnStackOut `xml:"Stacks>member"`
	}{}
	for _, s := range list {
		so := cfnStackOut{StackID: s.id, StackName: s.name, CreationTime: timeXML(s.created), StackStatus: s.status, StackStatusReason: s.reason}
		if !s.updated.IsZero() {
			so.LastUpdatedTime = timeXML(s.updated)
		}
		for _, k := range sortedKeys(s.params) {
			so.Parameters = append(so.Parameters, cfnParamOut{k, s.params[k]})
		}
		for _, o := range s.outputs {
			so.Outputs = append(so.Outputs, cfnOutputOut{OutputKey: o.Name, OutputValue: o.Value, Description: o.Description, ExportName: o.ExportName})
		}
		for _, k := range sortedKeys(s.tags) {
			so.Tags = append(so.Tags, cfnTagOut{k, s.tags[k]})
		}
		out.Stacks = append(out.Stacks, so)
	}
	return out, nil
}

type cfnEventOut struct {
	StackID              string `xml:"StackId"`
	EventID              string `xml:"EventId"`
	StackName            string `xml:"StackName"`
	LogicalResourceID    string `xml:"LogicalResourceId"`
	PhysicalResourceID   string `xml:"PhysicalResourceId,omitempty"`
	ResourceType         string `xml:"ResourceType"`
	Timestamp            string `xml:"Timestamp"`
	ResourceStatus       string `xml:"ResourceStatus"`
	ResourceStatusReason string `xml:"ResourceStatusReason,omitempty"`
	ClientRequestToken   string `xml:"ClientRequestToken,omitempty"`
}

// cfnEventsPage is how many events one DescribeStackEvents answers.
const cfnEventsPage = 100

func (c *Cloud) cfnDescribeStackEvents(_ identity, form url.Values) (any, *apiError) {
	name := form.Get("StackName")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stackLocked(name)
	if s == nil {
		return nil, validation("Stack [%s] does not exist", name)
	}
	start := 0
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return nil, validation("Invalid NextToken")
		}
		start = n
	}
	out := struct {
		XMLName     xml.Name      `xml:"r"`
		StackEvents []cfnEventOut `xml:"StackEvents>member"`
		NextToken   string        `xml:"NextToken,omitempty"`
	}{}
	// Newest first.
	for i := len(s.events) - 1 - start; i >= 0 && len(out.StackEvents) < cfnEventsPage; i-- {
		e := s.events[i]
		out.StackEvents = append(out.StackEvents, cfnEventOut{
			StackID: s.id, EventID: e.id, StackName: s.name, LogicalResourceID: e.logicalID, PhysicalResourceID: e.physicalID,
			ResourceType: e.typ, Timestamp: timeXML(e.at), ResourceStatus: e.status, ResourceStatusReason: e.reason, ClientRequestToken: e.token,
		})
	}
	if next := start + len(out.StackEvents); next < len(s.events) {
		out.NextToken = strconv.Itoa(next)
	}
	return out, nil
}

// eventLocked records an event of a stack or of one of its resources.
func (c *Cloud) eventLocked(s *stack, logicalID, physicalID, typ, status, reason, token string) {
	s.events = append(s.events, stackEvent{id: newUUID(), logicalID: logicalID, physicalID: physicalID, typ: typ,
		status: status, reason: reason, token: token, at: c.now()})
	c.changedLocked()
}

func (c *Cloud) setStackStatusLocked(s *stack, status, reason, token string) {
	s.status, s.reason = status, reason
	if token != "" {
		s.lastOperation = token
	}
	c.eventLocked(s, s.name, s.id, "AWS::CloudFormation::Stack", status, reason, token)
}

// startStackOpLocked runs op, an operation on s, on a goroutine the Cloud
// waits for.
func (c *Cloud) startStackOpLocked(s *stack, op func()) {
	if c.shut {
		return
	}
	s.busy = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		op()
	}()
}

// stackStep is how long each resource of a stack takes.
func (c *Cloud) stackStep() bool {
	t := time.NewTimer(c.cfg.StackStepTime)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.life.Done():
		return false
	}
}

func (c *Cloud) createStack(s *stack, token string) {
	created := c.applyResources(s, nil, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if created == nil {
		return
	}
	if created.failed {
		c.setStackStatusLocked(s, "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: ["+created.what+"]. Rollback requested by user.", token)
		c.mu.Unlock()
		c.deleteResources(s, created.made, token)
		c.mu.Lock()
		c.setStackStatusLocked(s, "ROLLBACK_COMPLETE", "", token)
	} else {
		c.finishOutputsLocked(s)
		c.setStackStatusLocked(s, "CREATE_COMPLETE", "", token)
	}
	s.busy = false
}

func (c *Cloud) updateStack(s, prev *stack, token string) {
	result := c.applyResources(s, prev, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if result == nil {
		return
	}
	if result.failed {
		c.setStackStatusLocked(s, "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: ["+result.what+"].", token)
		s.body, s.params, s.tags, s.eval = prev.body, prev.params, prev.tags, prev.eval
		c.setStackStatusLocked(s, "UPDATE_ROLLBACK_COMPLETE", "", token)
		s.busy = false
		return
	}
	c.setStackStatusLocked(s, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "", token)
	// Resources the new template no longer has.
	var gone []string
	for id := range s.resources {
		if !slices.Contains(s.eval.Resources(), id) {
			gone = append(gone, id)
		}
	}
	c.mu.Unlock()
	c.deleteResources(s, gone, token)
	c.mu.Lock()
	c.finishOutputsLocked(s)
	c.setStackStatusLocked(s, "UPDATE_COMPLETE", "", token)
	s.busy = false
}

func (c *Cloud) finishOutputsLocked(s *stack) {
	outs, err := s.eval.Outputs()
	if err != nil {
		c.tb.Errorf("awsfake: stack %s: outputs: %v", s.name, err)
		return
	}
	s.outputs = outs
}

// applyResult is the outcome of applyResources.
type applyResult struct {
	made   []string // resources created, in order
	failed bool
	what   string // the resource that failed
}

// applyResources creates (prev nil) or updates the stack's resources in
// order, one step each. It returns nil if the Cloud closed meanwhile.
func (c *Cloud) applyResources(s *stack, prev *stack, token string) *applyResult {
	res := &applyResult{}
	for _, id := range s.eval.Resources() {
		if !c.stackStep() {
			return nil
		}
		c.mu.Lock()
		typ := s.eval.Template().Resources[id].Type
		props, err := s.eval.Properties(id)
		old, exists := s.resources[id]
		verb := "CREATE"
		if exists {
			verb = "UPDATE"
			if err == nil && reflect.DeepEqual(old.props, props) {
				c.mu.Unlock()
				continue
			}
		}
		physical := ""
		if exists {
			physical = old.physicalID
		}
		c.eventLocked(s, id, physical, typ, verb+"_IN_PROGRESS", "", token)
		if err == nil {
			if reason, fail := c.failResources[id]; fail {
				err = fmt.Errorf("%s", reason)
			}
		}
		if err == nil {
			var r *stackResource
			if r, err = c.materializeLocked(s, id, typ, props, old); err == nil {
				s.resources[id] = r
				s.physicalIDs[id] = r.physicalID
				physical = r.physicalID
				if !exists {
					res.made = append(res.made, id)
				}
			}
		}
		if err != nil {
			c.eventLocked(s, id, physical, typ, verb+"_FAILED", err.Error(), token)
			res.failed, res.what = true, id
			c.mu.Unlock()
			return res
		}
		c.eventLocked(s, id, physical, typ, verb+"_COMPLETE", "", token)
		c.mu.Unlock()
	}
	return res
}

func (c *Cloud) deleteStack(s *stack, token string) {
	order := s.eval.DeletionOrder()
	if !c.deleteResources(s, order, token) {
		c.mu.Lock()
		c.setStackStatusLocked(s, "DELETE_FAILED", "The following resource(s) failed to delete.", token)
		s.busy = false
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStackStatusLocked(s, "DELETE_COMPLETE", "", token)
	s.busy = false
}

// deleteResources deletes the resources ids of the stack, those it has,
// in the order given. It reports whether all went.
func (c *Cloud) deleteResources(s *stack, ids []string, token string) bool {
	ok := true
	for _, id := range ids {
		c.mu.Lock()
		r, exists := s.resources[id]
		c.mu.Unlock()
		if !exists {
			continue
		}
		if !c.stackStep() {
			return false
		}
		c.mu.Lock()
		c.eventLocked(s, id, r.physicalID, r.typ, "DELETE_IN_PROGRESS", "", token)
		if refusal := c.unmaterializeLocked(r); refusal != "" {
			c.eventLocked(s, id, r.physicalID, r.typ, "DELETE_FAILED", refusal, token)
			ok = false
		} else {
			delete(s.resources, id)
			delete(s.physicalIDs, id)
			c.eventLocked(s, id, r.physicalID, r.typ, "DELETE_COMPLETE", "", token)
		}
		c.mu.Unlock()
	}
	return ok
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
