package awsfake

import (
	"encoding/xml"
	"net/url"
	"regexp"
	"slices"
	"strconv"
)

// ecsRequesterID is the account ECS creates task ENIs from.
const ecsRequesterID = "578734482556"

var eniIDPattern = regexp.MustCompile(`^eni-[0-9a-f]{8}([0-9a-f]{9})?$`)

type ec2DescribeNetworkInterfacesResponse struct {
	XMLName    xml.Name         `xml:"DescribeNetworkInterfacesResponse"`
	Xmlns      string           `xml:"xmlns,attr"`
	RequestID  string           `xml:"requestId"`
	Interfaces []ec2NetworkItem `xml:"networkInterfaceSet>item"`
}

type ec2GroupItem struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type ec2Association struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
}

type ec2PrivateIPItem struct {
	PrivateIPAddress string          `xml:"privateIpAddress"`
	PrivateDNSName   string          `xml:"privateDnsName"`
	Primary          bool            `xml:"primary"`
	Association      *ec2Association `xml:"association,omitempty"`
}

type ec2Attachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceOwnerID     string `xml:"instanceOwnerId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type ec2NetworkItem struct {
	NetworkInterfaceID string             `xml:"networkInterfaceId"`
	SubnetID           string             `xml:"subnetId"`
	VpcID              string             `xml:"vpcId"`
	AvailabilityZone   string             `xml:"availabilityZone"`
	Description        string             `xml:"description"`
	OwnerID            string             `xml:"ownerId"`
	RequesterID        string             `xml:"requesterId"`
	RequesterManaged   bool               `xml:"requesterManaged"`
	Status             string             `xml:"status"`
	MacAddress         string             `xml:"macAddress"`
	PrivateIPAddress   string             `xml:"privateIpAddress"`
	PrivateDNSName     string             `xml:"privateDnsName"`
	SourceDestCheck    bool               `xml:"sourceDestCheck"`
	Groups             []ec2GroupItem     `xml:"groupSet>item"`
	Attachment         ec2Attachment      `xml:"attachment"`
	Association        *ec2Association    `xml:"association,omitempty"`
	PrivateIPAddresses []ec2PrivateIPItem `xml:"privateIpAddressesSet>item"`
	InterfaceType      string             `xml:"interfaceType"`
}

// ec2Filters are the DescribeNetworkInterfaces filters the fake knows,
// with the value of an ENI each one matches.
var ec2Filters = map[string]func(t *task) string{
	"network-interface-id":         func(t *task) string { return t.ENI },
	"subnet-id":                    func(t *task) string { return t.subnet },
	"private-ip-address":           func(t *task) string { return t.PrivateIP },
	"addresses.private-ip-address": func(t *task) string { return t.PrivateIP },
	"association.public-ip":        func(t *task) string { return t.PublicIP },
	"status":                       func(*task) string { return "in-use" },
	"requester-managed":            func(*task) string { return "true" },
	"interface-type":               func(*task) string { return "interface" },
	"attachment.status":            func(*task) string { return "attached" },
}

// listN returns the values of an ec2query list: prefix.1, prefix.2…
func listN(form url.Values, prefix string) []string {
	var out []string
	for i := 1; form.Has(prefix + "." + strconv.Itoa(i)); i++ {
		out = append(out, form.Get(prefix+"."+strconv.Itoa(i)))
	}
	return out
}

// ec2DescribeNetworkInterfaces answers for the ENIs of tasks between
// PENDING and STOPPED, by NetworkInterfaceId.N, or all of them, narrowed
// by the filters it knows; every answer fits in one page.
func (c *Cloud) ec2DescribeNetworkInterfaces(form url.Values) (any, *apiError) {
	ids := listN(form, "NetworkInterfaceId")
	type filter struct {
		value  func(*task) string
		values []string
	}
	var filters []filter
	for i := 1; form.Has("Filter." + strconv.Itoa(i) + ".Name"); i++ {
		name := form.Get("Filter." + strconv.Itoa(i) + ".Name")
		value := ec2Filters[name]
		if value == nil {
			return nil, errorf(400, "InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		filters = append(filters, filter{value, listN(form, "Filter."+strconv.Itoa(i)+".Value")})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []*task
	if len(ids) == 0 {
		for _, t := range c.tasks {
			if c.enis[t.ENI] == t {
				found = append(found, t)
			}
		}
	}
	for _, id := range ids {
		if !eniIDPattern.MatchString(id) {
			return nil, errorf(400, "InvalidNetworkInterfaceID.Malformed", "Invalid id: %q (expecting \"eni-...\")", id)
		}
		t := c.enis[id]
		if t == nil {
			return nil, errorf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
		}
		if !slices.Contains(found, t) {
			found = append(found, t)
		}
	}
	out := ec2DescribeNetworkInterfacesResponse{Xmlns: ec2Namespace, RequestID: newUUID(), Interfaces: []ec2NetworkItem{}}
next:
	for _, t := range found {
		for _, f := range filters {
			if !slices.Contains(f.values, f.value(t)) {
				continue next
			}
		}
		out.Interfaces = append(out.Interfaces, c.ec2InterfaceLocked(t))
	}
	return out, nil
}

func (c *Cloud) ec2InterfaceLocked(t *task) ec2NetworkItem {
	dns := privateDNSName(t.PrivateIP, c.Region)
	var assoc *ec2Association
	if t.PublicIP != "" {
		assoc = &ec2Association{PublicIP: t.PublicIP, IPOwnerID: "amazon"}
	}
	item := ec2NetworkItem{
		NetworkInterfaceID: t.ENI,
		SubnetID:           t.subnet,
		VpcID:              c.vpcID,
		AvailabilityZone:   c.Region + "a",
		Description:        "arn:aws:ecs:" + c.Region + ":" + c.Account + ":attachment/" + t.attachmentID,
		OwnerID:            c.Account,
		RequesterID:        ecsRequesterID,
		RequesterManaged:   true,
		Status:             "in-use",
		MacAddress:         t.mac,
		PrivateIPAddress:   t.PrivateIP,
		PrivateDNSName:     dns,
		SourceDestCheck:    true,
		Attachment: ec2Attachment{
			AttachmentID:    "ela-attach-" + t.attachmentID[:8],
			InstanceOwnerID: ecsRequesterID,
			DeviceIndex:     1,
			Status:          "attached",
		},
		Association:        assoc,
		PrivateIPAddresses: []ec2PrivateIPItem{{PrivateIPAddress: t.PrivateIP, PrivateDNSName: dns, Primary: true, Association: assoc}},
		InterfaceType:      "interface",
	}
	for _, g := range t.SecurityGroups {
		item.Groups = append(item.Groups, ec2GroupItem{GroupID: g, GroupName: g})
	}
	return item
}
