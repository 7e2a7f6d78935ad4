package awsfake_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"fluidity/internal/awsfake"
)

// The fields of the task metadata endpoint v4 a client reads, as the ECS
// developer guide names them.
type metadataContainer struct {
	DockerID      string            `json:"DockerId"`
	Name          string            `json:"Name"`
	Labels        map[string]string `json:"Labels"`
	DesiredStatus string            `json:"DesiredStatus"`
	KnownStatus   string            `json:"KnownStatus"`
	StartedAt     time.Time         `json:"StartedAt"`
	Type          string            `json:"Type"`
	ContainerARN  string            `json:"ContainerARN"`
	Networks      []struct {
		NetworkMode   string   `json:"NetworkMode"`
		IPv4Addresses []string `json:"IPv4Addresses"`
		MACAddress    string   `json:"MACAddress"`
	} `json:"Networks"`
}

type metadataTask struct {
	Cluster          string                `json:"Cluster"`
	TaskARN          string                `json:"TaskARN"`
	Family           string                `json:"Family"`
	Revision         string                `json:"Revision"`
	DesiredStatus    string                `json:"DesiredStatus"`
	KnownStatus      string                `json:"KnownStatus"`
	AvailabilityZone string                `json:"AvailabilityZone"`
	LaunchType       string                `json:"LaunchType"`
	PullStartedAt    time.Time             `json:"PullStartedAt"`
	Limits           struct{ CPU float64 } `json:"Limits"`
	Containers       []metadataContainer   `json:"Containers"`
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url) // no signature, as from inside a task
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestTaskMetadata(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	c := newCloud(t, awsfake.CloudConfig{})
	arn := runOne(t, c, "alice")
	task := waitStatus(t, c, arn, "RUNNING")

	var ctr metadataContainer
	if status := getJSON(t, task.MetadataURI, &ctr); status != 200 {
		t.Fatalf("GET %s: %d", task.MetadataURI, status)
	}
	if ctr.Name != "exit" || ctr.DockerID == "" || ctr.KnownStatus != "RUNNING" || ctr.DesiredStatus != "RUNNING" || ctr.Type != "NORMAL" || ctr.StartedAt.IsZero() {
		t.Errorf("container = %+v", ctr)
	}
	if ctr.Labels["com.amazonaws.ecs.task-arn"] != arn || ctr.Labels["com.amazonaws.ecs.cluster"] != task.Cluster ||
		ctr.Labels["com.amazonaws.ecs.task-definition-family"] != "fluidity-exit" || ctr.Labels["com.amazonaws.ecs.task-definition-version"] != "3" {
		t.Errorf("labels = %v", ctr.Labels)
	}
	if len(ctr.Networks) != 1 || ctr.Networks[0].NetworkMode != "awsvpc" || ctr.Networks[0].IPv4Addresses[0] != task.PrivateIP {
		t.Errorf("networks = %+v", ctr.Networks)
	}

	var meta metadataTask
	if status := getJSON(t, task.MetadataURI+"/task", &meta); status != 200 {
		t.Fatalf("GET %s/task: %d", task.MetadataURI, status)
	}
	if meta.Cluster != "arn:aws:ecs:us-east-1:111122223333:cluster/fluidity" || meta.TaskARN != arn || meta.Family != "fluidity-exit" || meta.Revision != "3" ||
		meta.DesiredStatus != "RUNNING" || meta.KnownStatus != "RUNNING" || meta.LaunchType != "FARGATE" || meta.AvailabilityZone != "us-east-1a" ||
		meta.PullStartedAt.IsZero() || meta.Limits.CPU != 0.25 {
		t.Errorf("task metadata = %+v", meta)
	}
	if len(meta.Containers) != 1 || meta.Containers[0].DockerID != ctr.DockerID {
		t.Errorf("task metadata containers = %+v", meta.Containers)
	}

	c.StopTaskAs(arn, "UserInitiated", "idle")
	waitStatus(t, c, arn, "STOPPED")
	if getJSON(t, task.MetadataURI+"/task", &meta); meta.DesiredStatus != "STOPPED" || meta.KnownStatus != "STOPPED" {
		t.Errorf("after stop: desired %s known %s", meta.DesiredStatus, meta.KnownStatus)
	}
	if status := getJSON(t, c.URL+"/ecs-metadata/v4/0123-4567/task", &meta); status != http.StatusNotFound {
		t.Errorf("an unknown container's metadata: %d; want 404", status)
	}
}
