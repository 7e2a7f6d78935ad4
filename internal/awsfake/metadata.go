package awsfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metadataPrefix is the path under URL where each task's container has
// its metadata endpoint, ECS_CONTAINER_METADATA_URI_V4.
const metadataPrefix = "/ecs-metadata/v4/"

// The shapes below are those of the ECS developer guide's "Task metadata
// endpoint version 4" responses for tasks on Fargate.

type metadataLimits struct {
	CPU    float64 `json:"CPU"`
	Memory int     `json:"Memory"`
}

type metadataNetwork struct {
	NetworkMode              string   `json:"NetworkMode"`
	IPv4Addresses            []string `json:"IPv4Addresses"`
	AttachmentIndex          int      `json:"AttachmentIndex"`
	MACAddress               string   `json:"MACAddress"`
	IPv4SubnetCIDRBlock      string   `json:"IPv4SubnetCIDRBlock"`
	DomainNameServers        []string `json:"DomainNameServers"`
	DomainNameSearchList     []string `json:"DomainNameSearchList"`
	PrivateDNSName           string   `json:"PrivateDNSName"`
	SubnetGatewayIpv4Address string   `json:"SubnetGatewayIpv4Address"`
}

type metadataContainer struct {
	DockerID      string            `json:"DockerId"`
	Name          string            `json:"Name"`
	DockerName    string            `json:"DockerName"`
	Image         string            `json:"Image"`
	ImageID       string            `json:"ImageID"`
	Labels        map[string]string `json:"Labels"`
	DesiredStatus string            `json:"DesiredStatus"`
	KnownStatus   string            `json:"KnownStatus"`
	Limits        metadataLimits    `json:"Limits"`
	CreatedAt     *time.Time        `json:"CreatedAt,omitempty"`
	StartedAt     *time.Time        `json:"StartedAt,omitempty"`
	FinishedAt    *time.Time        `json:"FinishedAt,omitempty"`
	Type          string            `json:"Type"`
	ContainerARN  string            `json:"ContainerARN"`
	LogDriver     string            `json:"LogDriver"`
	LogOptions    map[string]string `json:"LogOptions"`
	Networks      []metadataNetwork `json:"Networks"`
	Snapshotter   string            `json:"Snapshotter"`
}

type metadataTask struct {
	Cluster                 string              `json:"Cluster"`
	TaskARN                 string              `json:"TaskARN"`
	Family                  string              `json:"Family"`
	Revision                string              `json:"Revision"`
	DesiredStatus           string              `json:"DesiredStatus"`
	KnownStatus             string              `json:"KnownStatus"`
	Limits                  metadataLimits      `json:"Limits"`
	PullStartedAt           *time.Time          `json:"PullStartedAt,omitempty"`
	PullStoppedAt           *time.Time          `json:"PullStoppedAt,omitempty"`
	ExecutionStoppedAt      *time.Time          `json:"ExecutionStoppedAt,omitempty"`
	AvailabilityZone        string              `json:"AvailabilityZone"`
	LaunchType              string              `json:"LaunchType"`
	Containers              []metadataContainer `json:"Containers"`
	ClockDrift              metadataClockDrift  `json:"ClockDrift"`
	EphemeralStorageMetrics struct {
		Utilized int `json:"Utilized"`
		Reserved int `json:"Reserved"`
	} `json:"EphemeralStorageMetrics"`
	Snapshotter string `json:"Snapshotter"`
}

type metadataClockDrift struct {
	ClockErrorBound            float64   `json:"ClockErrorBound"`
	ReferenceTimestamp         time.Time `json:"ReferenceTimestamp"`
	ClockSynchronizationStatus string    `json:"ClockSynchronizationStatus"`
}

// serveMetadata answers GET {MetadataURI} with the container's metadata
// and GET {MetadataURI}/task with the task's. It needs no signature, as
// on ECS.
func (c *Cloud) serveMetadata(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, metadataPrefix)
	runtimeID, sub, _ := strings.Cut(rest, "/")
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c.mu.Lock()
	var out any
	for _, t := range c.tasks {
		if t.runtimeID != runtimeID {
			continue
		}
		switch sub {
		case "":
			out = c.metadataContainerLocked(t)
		case "task":
			out = c.metadataTaskLocked(t)
		}
	}
	c.mu.Unlock()
	if out == nil {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// knownStatus is the agent's status of t's container.
func knownStatus(t *task) string {
	switch t.LastStatus {
	case statusProvisioning:
		return "NONE"
	case statusPending:
		return "PULLED"
	default:
		return containerStatus(t)
	}
}

func (c *Cloud) metadataContainerLocked(t *task) metadataContainer {
	index := c.subnets[t.subnet]
	cidr := "10.0." + strconv.Itoa(index) + ".0/24"
	m := metadataContainer{
		DockerID:   t.runtimeID,
		Name:       containerName,
		DockerName: containerName,
		Image:      containerImage(c.Account, c.Region, t.family),
		ImageID:    "sha256:" + hexSHA256(t.family),
		Labels: map[string]string{
			"com.amazonaws.ecs.cluster":                 t.Cluster,
			"com.amazonaws.ecs.container-name":          containerName,
			"com.amazonaws.ecs.task-arn":                t.ARN,
			"com.amazonaws.ecs.task-definition-family":  t.family,
			"com.amazonaws.ecs.task-definition-version": t.revisionString(),
		},
		DesiredStatus: t.DesiredStatus,
		KnownStatus:   knownStatus(t),
		Limits:        metadataLimits{CPU: 2, Memory: 0},
		CreatedAt:     timePtr(t.pullStoppedAt),
		StartedAt:     timePtr(t.StartedAt),
		FinishedAt:    timePtr(t.executionStoppedAt),
		Type:          "NORMAL",
		ContainerARN:  t.containerARN,
		LogDriver:     "awslogs",
		LogOptions: map[string]string{
			"awslogs-group":         "/ecs/" + t.family,
			"awslogs-region":        c.Region,
			"awslogs-stream-prefix": "ecs",
		},
		Networks: []metadataNetwork{{
			NetworkMode:              "awsvpc",
			IPv4Addresses:            []string{t.PrivateIP},
			AttachmentIndex:          0,
			MACAddress:               t.mac,
			IPv4SubnetCIDRBlock:      cidr,
			DomainNameServers:        []string{"10.0.0.2"},
			DomainNameSearchList:     []string{dnsSuffix(c.Region)},
			PrivateDNSName:           privateDNSName(t.PrivateIP, c.Region),
			SubnetGatewayIpv4Address: "10.0." + strconv.Itoa(index) + ".1/24",
		}},
		Snapshotter: "overlayfs",
	}
	return m
}

func (c *Cloud) metadataTaskLocked(t *task) metadataTask {
	known := knownStatus(t)
	if t.LastStatus == statusStopped || t.LastStatus == statusDeprovisioning {
		known = statusStopped
	}
	m := metadataTask{
		Cluster:            t.Cluster,
		TaskARN:            t.ARN,
		Family:             t.family,
		Revision:           t.revisionString(),
		DesiredStatus:      t.DesiredStatus,
		KnownStatus:        known,
		Limits:             metadataLimits{CPU: 0.25, Memory: 512},
		PullStartedAt:      timePtr(t.pullStartedAt),
		PullStoppedAt:      timePtr(t.pullStoppedAt),
		ExecutionStoppedAt: timePtr(t.executionStoppedAt),
		AvailabilityZone:   c.Region + "a",
		LaunchType:         "FARGATE",
		Containers:         []metadataContainer{c.metadataContainerLocked(t)},
		ClockDrift: metadataClockDrift{
			ClockErrorBound:            0.5,
			ReferenceTimestamp:         time.Now().UTC().Truncate(time.Second),
			ClockSynchronizationStatus: "SYNCHRONIZED",
		},
		Snapshotter: "overlayfs",
	}
	m.EphemeralStorageMetrics.Utilized = 261
	m.EphemeralStorageMetrics.Reserved = 20496
	return m
}
