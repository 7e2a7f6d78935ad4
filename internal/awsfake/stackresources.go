package awsfake

import (
	"fmt"
	"strings"
)

// materializeLocked makes a stack resource of type typ with the resolved
// properties props (old is the resource as it was, on an update), with the
// physical ID and attributes CloudFormation would give it. The resources
// the Cloud's other services serve (clusters, task definitions, subnets,
// security groups, functions) become real in the Cloud.
func (c *Cloud) materializeLocked(s *stack, id, typ string, props map[string]any, old *stackResource) (*stackResource, error) {
	r := &stackResource{logicalID: id, typ: typ, props: props, attrs: map[string]any{}}
	if old != nil {
		r.physicalID = old.physicalID
	}
	str := func(key string) string { v, _ := props[key].(string); return v }
	generated := func(prefix string) string {
		if r.physicalID != "" {
			return r.physicalID
		}
		return prefix + randomHex(17)
	}
	name := func(key string) string {
		if n := str(key); n != "" {
			return n
		}
		if r.physicalID != "" {
			return r.physicalID
		}
		return fmt.Sprintf("%s-%s-%s", s.name, id, strings.ToUpper(randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 12)))
	}
	arn := func(service, resource string) string {
		return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, c.Region, c.Account, resource)
	}
	switch typ {
	case "AWS::ECS::Cluster":
		r.physicalID = name("ClusterName")
		c.clusters[r.physicalID] = true
		r.attrs["Arn"] = c.clusterARN(r.physicalID)
	case "AWS::ECS::TaskDefinition":
		family := name("Family")
		rev := 1
		if revs := c.taskDefs[family]; len(revs) > 0 {
			rev = revs[len(revs)-1] + 1
		}
		c.taskDefs[family] = append(c.taskDefs[family], rev)
		def := containerDef{env: map[string]string{}}
		if ctrs, _ := props["ContainerDefinitions"].([]any); len(ctrs) > 0 {
			ctr, _ := ctrs[0].(map[string]any)
			def.image, _ = ctr["Image"].(string)
			for _, a := range asList(ctr["Command"]) {
				def.command = append(def.command, fmt.Sprint(a))
			}
			for _, e := range asList(ctr["Environment"]) {
				kv, _ := e.(map[string]any)
				def.env[fmt.Sprint(kv["Name"])] = fmt.Sprint(kv["Value"])
			}
		}
		c.containerDefs[fmt.Sprintf("%s:%d", family, rev)] = def
		r.physicalID = c.taskDefinitionARN(family, rev)
		r.attrs["TaskDefinitionArn"] = r.physicalID
	case "AWS::EC2::Subnet":
		r.physicalID = generated("subnet-")
		if _, ok := c.subnets[r.physicalID]; !ok {
			c.subnets[r.physicalID] = len(c.subnets)
		}
		r.attrs["SubnetId"] = r.physicalID
		r.attrs["AvailabilityZone"] = str("AvailabilityZone")
		r.attrs["VpcId"] = str("VpcId")
	case "AWS::EC2::SecurityGroup":
		r.physicalID = generated("sg-")
		c.groups[r.physicalID] = true
		r.attrs["GroupId"] = r.physicalID
		r.attrs["VpcId"] = str("VpcId")
	case "AWS::EC2::VPC":
		r.physicalID = generated("vpc-")
		r.attrs["VpcId"] = r.physicalID
		r.attrs["CidrBlock"] = str("CidrBlock")
	case "AWS::EC2::InternetGateway":
		r.physicalID = generated("igw-")
		r.attrs["InternetGatewayId"] = r.physicalID
	case "AWS::EC2::RouteTable":
		r.physicalID = generated("rtb-")
		r.attrs["RouteTableId"] = r.physicalID
	case "AWS::EC2::SubnetRouteTableAssociation":
		r.physicalID = generated("rtbassoc-")
	case "AWS::IAM::Role":
		r.physicalID = name("RoleName")
		r.attrs["Arn"] = fmt.Sprintf("arn:aws:iam::%s:role/%s", c.Account, r.physicalID)
		r.attrs["RoleId"] = "AROA" + strings.ToUpper(randomHex(17))
	case "AWS::IAM::ManagedPolicy":
		r.physicalID = fmt.Sprintf("arn:aws:iam::%s:policy/%s", c.Account, name("ManagedPolicyName"))
		r.attrs["PolicyArn"] = r.physicalID
	case "AWS::Logs::LogGroup":
		r.physicalID = name("LogGroupName")
		r.attrs["Arn"] = arn("logs", "log-group:"+r.physicalID+":*")
	case "AWS::Lambda::Function":
		r.physicalID = name("FunctionName")
		fn := &Function{Name: r.physicalID, ARN: arn("lambda", "function:"+r.physicalID), Role: str("Role"), Env: map[string]string{}}
		if code, _ := props["Code"].(map[string]any); code != nil {
			fn.ImageURI, _ = code["ImageUri"].(string)
		}
		if ic, _ := props["ImageConfig"].(map[string]any); ic != nil {
			for _, a := range asList(ic["Command"]) {
				fn.Command = append(fn.Command, fmt.Sprint(a))
			}
		}
		if env, _ := props["Environment"].(map[string]any); env != nil {
			vars, _ := env["Variables"].(map[string]any)
			for k, v := range vars {
				fn.Env[k] = fmt.Sprint(v)
			}
		}
		fmt.Sscan(fmt.Sprint(props["ReservedConcurrentExecutions"]), &fn.ReservedConcurrency)
		c.functions[r.physicalID] = fn
		r.attrs["Arn"] = fn.ARN
	case "AWS::Lambda::Url":
		r.physicalID = str("TargetFunctionArn")
		r.attrs["FunctionArn"] = str("TargetFunctionArn")
		r.attrs["FunctionUrl"] = c.FunctionURL
	case "AWS::Events::Rule":
		r.physicalID = name("Name")
		r.attrs["Arn"] = arn("events", "rule/"+r.physicalID)
	default:
		r.physicalID = generated(strings.ToLower(typ[strings.LastIndex(typ, ":")+1:]) + "-")
	}
	return r, nil
}

// unmaterializeLocked deletes a stack resource, or says as CloudFormation
// would why it cannot ("" when it could).
func (c *Cloud) unmaterializeLocked(r *stackResource) (refusal string) {
	switch r.typ {
	case "AWS::ECS::Cluster":
		for _, t := range c.tasks {
			if t.clusterName == r.physicalID && t.LastStatus != statusStopped {
				return "The Cluster cannot be deleted while Tasks are active. (Service: AmazonECS; Status Code: 400; Error Code: ClusterContainsTasksException)"
			}
		}
		delete(c.clusters, r.physicalID)
	case "AWS::EC2::Subnet":
		delete(c.subnets, r.physicalID)
	case "AWS::EC2::SecurityGroup":
		delete(c.groups, r.physicalID)
	case "AWS::Lambda::Function":
		delete(c.functions, r.physicalID)
	}
	return ""
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
