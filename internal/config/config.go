package config

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
)

const (
	envPrefix  = "FLUIDITY_"
	configFlag = "config"
	configEnv  = envPrefix + "CONFIG"
)

// Key describes one configuration key: where it lives in the YAML file, the
// flag and environment variable that set it, and its syntax.
type Key struct {
	Path    string // dotted YAML path, such as "egress.allow_hosts"
	Flag    string // flag name without dashes, such as "egress-allow-hosts"; "" if the key has no flag
	Env     string // environment variable, such as "FLUIDITY_EGRESS_ALLOW_HOSTS"; "" if it has none
	Type    string // "string", "bool", "int", "int64", "uint16", "float64", "duration", "list" or "map"
	Help    string // the help tag
	Default string // the default in flag syntax (lists and maps comma-separated); "" when it is the zero value
}

// field is a leaf key bound to a struct field.
type field struct {
	key   Key
	kind  kind
	typ   reflect.Type
	index []int      // path from the root struct, for FieldByIndex
	flag  *flagValue // nil if the key has no flag
}

// Loader loads one configuration struct from a YAML file, the environment
// and a flag set. It is made by Bind and is not safe for concurrent use.
type Loader struct {
	// Immutable after Bind.
	cfg      reflect.Value // the *T passed to Bind
	fs       *flag.FlagSet
	fields   []*field          // leaf keys in declaration order
	byPath   map[string]*field // leaf keys by Path
	byEnv    map[string]*field // leaf keys by Env
	sections map[string]bool   // paths of nested structs
	paths    []string          // every leaf and section path, in declaration order, for suggestions
	envs     []string          // every Env, in declaration order, for suggestions

	ignored    map[string]bool // environment variables handled elsewhere; set by IgnoreEnv
	configFlag string          // value of --config, set by fs.Parse
	file       string          // the file Load used
}

// Bind registers on fs one flag per leaf key of *cfg, plus --config FILE,
// and returns a Loader that fills *cfg. cfg must be a non-nil pointer to a
// struct that already holds the defaults; flag help shows them.
//
// Bind panics if cfg's type has a field of an unsupported type, two keys
// that map to the same flag or environment variable, or a malformed tag:
// these are programming errors.
func Bind(fs *flag.FlagSet, cfg any) *Loader {
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config.Bind: cfg must be a non-nil pointer to a struct, got %T", cfg))
	}
	l := &Loader{
		cfg:      rv,
		fs:       fs,
		byPath:   make(map[string]*field),
		byEnv:    make(map[string]*field),
		sections: make(map[string]bool),
		ignored:  make(map[string]bool),
	}
	l.bindStruct(rv.Elem().Type(), nil, "", false, false)

	byFlag := make(map[string]*field)
	for _, f := range l.fields {
		f.key.Default = format(f.kind, rv.Elem().FieldByIndex(f.index))
		if f.key.Env != "" {
			if g := l.byEnv[f.key.Env]; g != nil {
				panic(fmt.Sprintf("config.Bind: keys %q and %q both map to environment variable %s; rename one or tag it env:\"-\"", g.key.Path, f.key.Path, f.key.Env))
			}
			if f.key.Env == configEnv {
				panic(fmt.Sprintf("config.Bind: key %q maps to %s, which names the config file; rename it", f.key.Path, configEnv))
			}
			l.byEnv[f.key.Env] = f
			l.envs = append(l.envs, f.key.Env)
		}
		if f.key.Flag != "" {
			if g := byFlag[f.key.Flag]; g != nil {
				panic(fmt.Sprintf("config.Bind: keys %q and %q both map to flag --%s; give one a flag:\"name\" tag", g.key.Path, f.key.Path, f.key.Flag))
			}
			if f.key.Flag == configFlag {
				panic(fmt.Sprintf("config.Bind: key %q maps to flag --%s, which names the config file; give it a flag:\"name\" tag", f.key.Path, configFlag))
			}
			byFlag[f.key.Flag] = f
			f.flag = &flagValue{f: f}
			fs.Var(f.flag, f.key.Flag, usage(f))
		}
	}
	fs.StringVar(&l.configFlag, configFlag, "", "YAML configuration `file` (env "+configEnv+")")
	return l
}

// bindStruct records the keys of struct type t, found at index under the
// key path prefix. noFlag and noEnv are inherited from a section tagged
// flag:"-" or env:"-".
func (l *Loader) bindStruct(t reflect.Type, index []int, prefix string, noFlag, noEnv bool) {
	before := len(l.fields)
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name) // as go.yaml.in/yaml/v3 does
		}
		where := fmt.Sprintf("%s.%s", t, sf.Name)
		if strings.ContainsAny(name, ". ") {
			panic(fmt.Sprintf("config.Bind: field %s: yaml name %q must not contain dots or spaces", where, name))
		}
		flagTag, envTag := sf.Tag.Get("flag"), sf.Tag.Get("env")
		if envTag != "" && envTag != "-" {
			panic(fmt.Sprintf("config.Bind: field %s: env tag %q not supported; use env:\"-\" or no tag", where, envTag))
		}
		idx := append(slices.Clip(index), i)
		fieldNoFlag, fieldNoEnv := noFlag || flagTag == "-", noEnv || envTag == "-"

		if sf.Type.Kind() == reflect.Struct {
			if flagTag != "" && flagTag != "-" {
				panic(fmt.Sprintf("config.Bind: field %s: a section cannot have a flag name; tag its fields instead", where))
			}
			path := prefix
			if !slices.Contains(strings.Split(opts, ","), "inline") {
				path = joinPath(prefix, name)
				l.addPath(path, where)
				l.sections[path] = true
			}
			l.bindStruct(sf.Type, idx, path, fieldNoFlag, fieldNoEnv)
			continue
		}

		path := joinPath(prefix, name)
		k, ok := kindOf(sf.Type)
		if !ok {
			panic(fmt.Sprintf("config.Bind: key %q (field %s) has unsupported type %s; "+
				"use string, bool, int, int64, uint16, float64, time.Duration, []string, map[string]string or a struct",
				path, where, sf.Type))
		}
		l.addPath(path, where)
		f := &field{
			key: Key{
				Path: path,
				Type: k.String(),
				Help: sf.Tag.Get("help"),
			},
			kind:  k,
			typ:   sf.Type,
			index: idx,
		}
		switch {
		case fieldNoFlag:
		case flagTag != "":
			f.key.Flag = flagTag
		default:
			f.key.Flag = FlagName(path)
		}
		if !fieldNoEnv {
			f.key.Env = EnvName(path)
		}
		l.fields = append(l.fields, f)
		l.byPath[path] = f
	}
	if len(l.fields) == before {
		panic(fmt.Sprintf("config.Bind: %s (key %q) has no configurable fields; "+
			"structs from other packages such as time.Time are not supported", t, prefix))
	}
}

func (l *Loader) addPath(path, where string) {
	if l.sections[path] || l.byPath[path] != nil {
		panic(fmt.Sprintf("config.Bind: field %s: key %q is defined twice", where, path))
	}
	l.paths = append(l.paths, path)
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// FlagName returns the flag derived from a key path: dots and underscores
// become dashes, so "egress.allow_hosts" is --egress-allow-hosts.
func FlagName(path string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(path)
}

// EnvName returns the environment variable derived from a key path:
// FLUIDITY_ followed by the path in upper case with dots and dashes as
// underscores, so "egress.allow_hosts" is FLUIDITY_EGRESS_ALLOW_HOSTS.
func EnvName(path string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// usage is the flag help of f: its help tag, then the value syntax and the
// environment variable, with the syntax in back quotes so that
// flag.PrintDefaults shows it as the argument name.
func usage(f *field) string {
	quote := func(s string) string {
		if strings.Contains(f.key.Help, "`") {
			return s // the help names the argument itself
		}
		return "`" + s + "`"
	}
	var notes []string
	switch f.kind {
	case kindBool:
	case kindList:
		notes = append(notes, "comma-separated "+quote("list")+", repeatable")
	case kindMap:
		notes = append(notes, "comma-separated "+quote("KEY=VALUE")+" items, repeatable")
	case kindDuration:
		notes = append(notes, quote("duration")+" such as 10s or 1m30s")
	default:
		notes = append(notes, quote(f.kind.String()))
	}
	if f.key.Env != "" {
		notes = append(notes, "env "+f.key.Env)
	}
	s := f.key.Help
	if len(notes) > 0 {
		if s != "" {
			s += " "
		}
		s += "(" + strings.Join(notes, "; ") + ")"
	}
	return s
}

// IgnoreEnv marks FLUIDITY_* environment variables that are handled
// elsewhere, so that Load does not reject them as unknown. It panics if a
// name is the variable of a key.
func (l *Loader) IgnoreEnv(names ...string) {
	for _, name := range names {
		if f := l.byEnv[name]; f != nil || name == configEnv {
			panic(fmt.Sprintf("config: IgnoreEnv(%q): Load reads this variable itself", name))
		}
		l.ignored[name] = true
	}
}

// Keys lists every leaf key in declaration order. The --config flag and
// FLUIDITY_CONFIG, which every Loader has, are not keys and not listed.
func (l *Loader) Keys() []Key {
	keys := make([]Key, len(l.fields))
	for i, f := range l.fields {
		keys[i] = f.key
	}
	return keys
}

// ConfigFile returns the configuration file that the last Load read, or ""
// if none was named.
func (l *Loader) ConfigFile() string { return l.file }

// Load fills the struct given to Bind from, in increasing precedence:
//
//  1. the YAML file named by --config, or else by FLUIDITY_CONFIG;
//  2. the FLUIDITY_* variables of environ, which is in os.Environ form;
//  3. the flags set on the command line.
//
// A source that sets a list or a map replaces the value from the sources
// below it. Load must be called after the flag set is parsed.
//
// When the struct implements interface{ Validate() error }, Load calls it
// last and returns its error unchanged. On any error the struct is left as
// it was.
func (l *Loader) Load(environ []string) error {
	if !l.fs.Parsed() {
		return errors.New("config: Load called before the flag set was parsed")
	}
	env := fluidityEnv(environ)

	l.file = l.configFlag
	if l.file == "" {
		for _, kv := range env {
			if kv[0] == configEnv {
				l.file = kv[1]
			}
		}
	}

	// Work on a copy, so that a failed Load leaves the struct alone. Sources
	// replace slices and maps whole and never write through them, so the
	// shallow copy shares nothing that changes.
	cfg := reflect.New(l.cfg.Elem().Type())
	cfg.Elem().Set(l.cfg.Elem())

	if l.file != "" {
		data, err := os.ReadFile(l.file)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if err := l.decodeYAML(cfg.Elem(), l.file, data); err != nil {
			return err
		}
	}
	if err := l.applyEnv(cfg.Elem(), env); err != nil {
		return err
	}
	for _, f := range l.fields {
		if f.flag != nil && f.flag.set {
			cfg.Elem().FieldByIndex(f.index).Set(clone(f.kind, f.flag.pending))
		}
	}

	if v, ok := cfg.Interface().(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	l.cfg.Elem().Set(cfg.Elem())
	return nil
}

// fluidityEnv returns the FLUIDITY_* variables of environ as name and value
// pairs, in environ order.
func fluidityEnv(environ []string) [][2]string {
	var env [][2]string
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) {
			env = append(env, [2]string{name, value})
		}
	}
	return env
}

// applyEnv sets the keys named by env, a list of FLUIDITY_* name and value
// pairs, and reports every unknown variable and invalid value.
func (l *Loader) applyEnv(cfg reflect.Value, env [][2]string) error {
	var errs []error
	for _, kv := range env {
		name, value := kv[0], kv[1]
		if name == configEnv || l.ignored[name] {
			continue
		}
		f := l.byEnv[name]
		if f == nil {
			errs = append(errs, &Error{Key: name, Err: ErrUnknownKey, Suggestion: closest(name, l.envs)})
			continue
		}
		v, err := f.parseText(value)
		if err != nil {
			errs = append(errs, &Error{Key: name, Err: err})
			continue
		}
		cfg.FieldByIndex(f.index).Set(v)
	}
	return errors.Join(errs...)
}

// clone copies a list or map so that the configuration does not share it
// with the flag value, which a later Set would extend.
func clone(k kind, v reflect.Value) reflect.Value {
	switch k {
	case kindList:
		s := slices.Clone(v.Convert(reflect.TypeFor[[]string]()).Interface().([]string))
		return reflect.ValueOf(s).Convert(v.Type())
	case kindMap:
		m := maps.Clone(v.Convert(reflect.TypeFor[map[string]string]()).Interface().(map[string]string))
		return reflect.ValueOf(m).Convert(v.Type())
	}
	return v
}
