package awsfake

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Task statuses, as ECS reports them.
const (
	statusProvisioning   = "PROVISIONING"
	statusPending        = "PENDING"
	statusRunning        = "RUNNING"
	statusStopping       = "STOPPING"
	statusDeprovisioning = "DEPROVISIONING"
	statusStopped        = "STOPPED"
)

// containerName is the name of the task definition's one container.
const containerName = "exit"

// Container is a launched task's container.
type Container struct {
	// PublicIP is reported as the ENI's public IP when the task assigns
	// one (tests use 127.0.0.2, 127.0.0.3…). If empty, one from
	// 203.0.113.0/24 is.
	PublicIP string
	// Exited is closed when the container exits. If it exits before it
	// was asked to stop, the task stops (stopCode
	// EssentialContainerExited, stoppedReason "Essential container in task
	// exited"). If nil, the container never exits on its own and is taken
	// to have exited once Stop returns.
	Exited <-chan struct{}
	// Stop asks the container to stop (like SIGTERM), on StopTask,
	// StopTaskAs or Close. It may be nil.
	Stop func()
	// ExitCode, if set, is asked for the container's exit code once it
	// has exited, for DescribeTasks' containers[].exitCode.
	ExitCode func() int
}

// Task is a snapshot of one task.
type Task struct {
	ARN, ID                   string
	Cluster, TaskDefinition   string // ARNs
	StartedBy, ClientToken    string
	LastStatus, DesiredStatus string
	Tags                      map[string]string
	// CreatedAt is set by RunTask, StartedAt once RUNNING, StoppingAt when
	// the desired status becomes STOPPED, StoppedAt once STOPPED.
	CreatedAt, StartedAt, StoppingAt, StoppedAt time.Time
	StopCode, StoppedReason                     string
	// ENI and PrivateIP are chosen by RunTask (ECS reports them once the
	// ENI is attached, as the task becomes PENDING); PublicIP is set once
	// the ENI has one.
	ENI, PrivateIP, PublicIP string
	Subnets, SecurityGroups  []string
	AssignPublicIP           bool
	Env                      map[string]string // the container's environment overrides from RunTask
	// Command, DefinitionEnv and Image are the container's, from a task
	// definition that a stack made (empty for AddTaskDefinition's).
	Command       []string
	DefinitionEnv map[string]string
	Image         string
	MetadataURI   string // the value of ECS_CONTAINER_METADATA_URI_V4 for the task's container
	Caller        string // ARN of the identity that called RunTask
}

func (t Task) clone() Task {
	t.Tags = maps.Clone(t.Tags)
	t.Subnets = slices.Clone(t.Subnets)
	t.SecurityGroups = slices.Clone(t.SecurityGroups)
	t.Env = maps.Clone(t.Env)
	t.Command = slices.Clone(t.Command)
	t.DefinitionEnv = maps.Clone(t.DefinitionEnv)
	return t
}

// task is a task's whole state; every field is guarded by Cloud.mu.
type task struct {
	Task

	family      string
	revision    int
	clusterName string
	launchType  string
	provider    string // capacity provider, if RunTask named a strategy
	group       string
	overrides   ecsTaskOverride
	version     int64

	subnet           string // the subnet the ENI is in
	attachmentID     string
	attachmentStatus string
	mac              string
	runtimeID        string // the container's DockerId
	containerARN     string

	pullStartedAt, pullStoppedAt, connectivityAt, executionStoppedAt time.Time

	held         bool   // waiting in PROVISIONING for SetHold(false)
	startFailure string // stop while PENDING with this reason
	timer        *time.Timer
	launching    bool       // Launch is running
	ctr          *Container // the launched container
	ctrGone      bool       // the container exited, or was given up as killed
	stopAsked    bool       // ctr.Stop was called
}

// Tasks returns every task ever run, oldest first.
func (c *Cloud) Tasks() []Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

func (c *Cloud) snapshotLocked() []Task {
	out := make([]Task, len(c.tasks))
	for i, t := range c.tasks {
		out[i] = t.Task.clone()
	}
	return out
}

// Task returns the task with an ARN or ID.
func (c *Cloud) Task(arnOrID string) (Task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.findLocked(arnOrID)
	if t == nil {
		return Task{}, false
	}
	return t.Task.clone(), true
}

func (c *Cloud) findLocked(arnOrID string) *task {
	id := arnOrID
	if strings.HasPrefix(arnOrID, "arn:") {
		id = arnOrID[strings.LastIndex(arnOrID, "/")+1:]
	}
	t := c.byID[id]
	if t == nil || (id != arnOrID && t.ARN != arnOrID) {
		return nil
	}
	return t
}

// StopTaskAs stops a task as ECS itself does (maintenance, OOM…): desired
// status STOPPED with stopCode and reason, and Container.Stop called.
// A task already stopping is left as it is.
func (c *Cloud) StopTaskAs(arnOrID, stopCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.findLocked(arnOrID)
	if t == nil {
		c.tb.Errorf("awsfake: StopTaskAs: no task %q", arnOrID)
		return
	}
	c.stopLocked(t, stopCode, reason)
}

// SetRunFailure makes RunTask answer 200 with no tasks and one failure
// with reason (such as "Capacity is unavailable at this time. Please try
// again later or in a different availability zone"). "" clears it.
func (c *Cloud) SetRunFailure(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runFailure = reason
}

// SetStartFailure makes tasks run from now on stop while PENDING, with
// stopCode TaskFailedToStart and stoppedReason reason (such as
// "CannotPullContainerError: …"). "" clears it.
func (c *Cloud) SetStartFailure(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startFailure = reason
}

// SetHold makes new tasks stay PROVISIONING while hold is true;
// SetHold(false) lets them, and those held, go on.
func (c *Cloud) SetHold(hold bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = hold
	if hold || c.shut {
		return
	}
	for _, t := range c.tasks {
		if t.held {
			t.held = false
			t.timer = time.AfterFunc(c.cfg.ProvisionTime, func() { c.provisioned(t) })
		}
	}
}

// newTaskLocked creates a PROVISIONING task and starts it on its way.
func (c *Cloud) newTaskLocked(t *task) {
	now := c.now()
	t.ID = randomHex(32)
	t.ARN = fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", c.Region, c.Account, t.clusterName, t.ID)
	t.LastStatus, t.DesiredStatus = statusProvisioning, statusRunning
	t.CreatedAt = now
	t.subnet = t.Subnets[0]
	t.attachmentID = newUUID()
	t.attachmentStatus = "PRECREATED"
	t.ENI = "eni-" + randomHex(17)
	t.mac = fmt.Sprintf("0a:%s:%s:%s:%s:%s", randomHex(2), randomHex(2), randomHex(2), randomHex(2), randomHex(2))
	c.seq++
	t.PrivateIP = fmt.Sprintf("10.0.%d.%d", c.subnets[t.subnet], 4+c.seq%250)
	t.runtimeID = fmt.Sprintf("%s-%010d", t.ID, 1000000000+int64(c.seq)*7919%9000000000)
	t.containerARN = fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s/%s", c.Region, c.Account, t.clusterName, t.ID, newUUID())
	t.MetadataURI = c.URL + metadataPrefix + t.runtimeID
	t.startFailure = c.startFailure
	t.version = 1
	c.tasks = append(c.tasks, t)
	c.byID[t.ID] = t
	if c.hold {
		t.held = true
	} else {
		t.timer = time.AfterFunc(c.cfg.ProvisionTime, func() { c.provisioned(t) })
	}
	c.changedLocked()
}

// touchLocked notes a change of t.
func (c *Cloud) touchLocked(t *task) {
	t.version++
	c.changedLocked()
}

// provisioned moves t from PROVISIONING to PENDING: its ENI is attached.
func (c *Cloud) provisioned(t *task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut || t.LastStatus != statusProvisioning || t.DesiredStatus != statusRunning {
		return
	}
	t.LastStatus = statusPending
	t.attachmentStatus = "ATTACHED"
	t.pullStartedAt = c.now()
	c.enis[t.ENI] = t
	if t.AssignPublicIP && c.cfg.Launch == nil {
		t.PublicIP = c.allocatePublicIPLocked()
	}
	t.timer = time.AfterFunc(c.cfg.PendingTime, func() { c.pendingDone(t) })
	c.touchLocked(t)
}

func (c *Cloud) allocatePublicIPLocked() string {
	c.seq++
	return fmt.Sprintf("203.0.113.%d", 1+c.seq%254)
}

// pendingDone ends PENDING: the task fails to start, has its container
// launched, or is RUNNING.
func (c *Cloud) pendingDone(t *task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut || t.LastStatus != statusPending || t.DesiredStatus != statusRunning {
		return
	}
	t.timer = nil
	switch {
	case t.startFailure != "":
		c.failStartLocked(t, t.startFailure)
	case c.cfg.Launch != nil:
		t.launching = true
		snap := t.Task.clone()
		c.wg.Add(1)
		go c.launch(t, snap)
	default:
		c.runningLocked(t, "")
	}
	c.touchLocked(t)
}

// launch runs Launch for t, outside the lock.
func (c *Cloud) launch(t *task, snap Task) {
	defer c.wg.Done()
	ctr, err := c.cfg.Launch(snap)
	c.mu.Lock()
	defer c.mu.Unlock()
	t.launching = false
	if err == nil {
		t.ctr = &ctr
	}
	if c.shut {
		return // Close stops the container
	}
	switch {
	case err != nil && t.DesiredStatus == statusRunning:
		c.failStartLocked(t, "CannotStartContainerError: "+err.Error())
	case err != nil:
		c.deprovisionLocked(t)
	default:
		if ctr.Exited != nil {
			c.wg.Add(1)
			go c.watchContainer(t, ctr.Exited)
		}
		if t.DesiredStatus == statusStopped { // stopped while launching
			t.LastStatus = statusStopping
			c.stopContainerLocked(t)
		} else {
			c.runningLocked(t, ctr.PublicIP)
		}
	}
	c.touchLocked(t)
}

func (c *Cloud) runningLocked(t *task, publicIP string) {
	now := c.now()
	t.LastStatus = statusRunning
	t.StartedAt, t.pullStoppedAt, t.connectivityAt = now, now, now
	if t.AssignPublicIP {
		switch {
		case publicIP != "":
			t.PublicIP = publicIP
		case t.PublicIP == "":
			t.PublicIP = c.allocatePublicIPLocked()
		}
	}
}

// watchContainer waits for a launched container to exit.
func (c *Cloud) watchContainer(t *task, exited <-chan struct{}) {
	defer c.wg.Done()
	select {
	case <-exited:
		c.containerExited(t)
	case <-c.life.Done():
	}
}

// containerExited notes that t's container is gone. If nobody asked it
// to stop, the task stops as an essential container's exit stops it.
func (c *Cloud) containerExited(t *task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut || t.ctrGone {
		return
	}
	t.ctrGone = true
	if t.DesiredStatus == statusRunning {
		t.DesiredStatus = statusStopped
		t.StopCode, t.StoppedReason = "EssentialContainerExited", "Essential container in task exited"
		t.StoppingAt = c.now()
	}
	if t.LastStatus == statusRunning || t.LastStatus == statusStopping {
		if t.timer != nil {
			t.timer.Stop()
			t.timer = nil
		}
		c.deprovisionLocked(t)
	}
	c.touchLocked(t)
}

func (c *Cloud) failStartLocked(t *task, reason string) {
	t.DesiredStatus = statusStopped
	t.StopCode, t.StoppedReason = "TaskFailedToStart", reason
	t.StoppingAt = c.now()
	c.deprovisionLocked(t)
}

// stopLocked sets t's desired status to STOPPED and starts stopping it.
func (c *Cloud) stopLocked(t *task, code, reason string) {
	if t.DesiredStatus == statusStopped {
		return
	}
	t.DesiredStatus = statusStopped
	t.StopCode, t.StoppedReason = code, reason
	t.StoppingAt = c.now()
	t.held = false
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	switch {
	case t.launching:
		// launch finishes the stop once Launch returns.
	case t.ctr != nil && !t.ctrGone:
		t.LastStatus = statusStopping
		c.stopContainerLocked(t)
	default:
		c.deprovisionLocked(t)
	}
	c.touchLocked(t)
}

// stopContainerLocked asks t's container to stop and gives it
// StopTimeout to exit.
func (c *Cloud) stopContainerLocked(t *task) {
	if c.shut {
		return
	}
	t.timer = time.AfterFunc(c.cfg.StopTimeout, func() { c.killed(t) })
	t.stopAsked = true
	ctr := *t.ctr
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if ctr.Stop != nil {
			ctr.Stop()
		}
		if ctr.Exited == nil {
			c.containerExited(t)
		}
	}()
}

// killed gives up on a container that did not exit within StopTimeout.
func (c *Cloud) killed(t *task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut || t.LastStatus != statusStopping {
		return
	}
	t.timer = nil
	t.ctrGone = true
	c.deprovisionLocked(t)
	c.touchLocked(t)
}

// deprovisionLocked moves t to DEPROVISIONING, then after StopTime to
// STOPPED.
func (c *Cloud) deprovisionLocked(t *task) {
	t.LastStatus = statusDeprovisioning
	if t.attachmentStatus == "ATTACHED" {
		t.attachmentStatus = "DETACHING"
	}
	if c.shut {
		return
	}
	t.timer = time.AfterFunc(c.cfg.StopTime, func() { c.stopped(t) })
}

func (c *Cloud) stopped(t *task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut || t.LastStatus != statusDeprovisioning {
		return
	}
	now := c.now()
	t.timer = nil
	t.LastStatus = statusStopped
	t.StoppedAt, t.executionStoppedAt = now, now
	if t.attachmentStatus != "PRECREATED" {
		t.attachmentStatus = "DELETED"
	}
	delete(c.enis, t.ENI)
	c.touchLocked(t)
}

// revisionString is the task definition's revision as text.
func (t *task) revisionString() string { return strconv.Itoa(t.revision) }
