// Package cfn reads, evaluates and checks CloudFormation templates offline.
package cfn
