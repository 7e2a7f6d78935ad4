package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is the value syntax of a leaf key.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindInt64
	kindUint16
	kindFloat64
	kindDuration
	kindList
	kindMap
)

// String returns the name Key.Type reports.
func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindBool:
		return "bool"
	case kindInt:
		return "int"
	case kindInt64:
		return "int64"
	case kindUint16:
		return "uint16"
	case kindFloat64:
		return "float64"
	case kindDuration:
		return "duration"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	stringType   = reflect.TypeFor[string]()
)

// kindOf returns the kind of a leaf of type t, or false if t is not a
// supported leaf type. Named types with a supported underlying type are
// accepted (type Mode string), except that list elements and map keys and
// values must be plain strings.
func kindOf(t reflect.Type) (kind, bool) {
	if t == durationType {
		return kindDuration, true
	}
	switch t.Kind() {
	case reflect.String:
		return kindString, true
	case reflect.Bool:
		return kindBool, true
	case reflect.Int:
		return kindInt, true
	case reflect.Int64:
		return kindInt64, true
	case reflect.Uint16:
		return kindUint16, true
	case reflect.Float64:
		return kindFloat64, true
	case reflect.Slice:
		if t.Elem() == stringType {
			return kindList, true
		}
	case reflect.Map:
		if t.Key() == stringType && t.Elem() == stringType {
			return kindMap, true
		}
	}
	return 0, false
}

// ErrInvalidValue is matched (with errors.Is) by every error about a value
// that does not parse as its key's type, whatever its source.
var ErrInvalidValue = errors.New("invalid value")

// valueError is a value that does not parse. Its message says what was
// expected; it matches ErrInvalidValue.
type valueError struct{ msg string }

func (e *valueError) Error() string        { return e.msg }
func (e *valueError) Is(target error) bool { return target == ErrInvalidValue }

func invalid(format string, args ...any) error {
	return &valueError{msg: fmt.Sprintf(format, args...)}
}

// parseScalar parses s as a value of the scalar kind k and returns it as a
// value of type t.
func parseScalar(k kind, t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch k {
	case kindString:
		v.SetString(s)
	case kindBool:
		b, err := parseBool(s)
		if err != nil {
			return reflect.Value{}, err
		}
		v.SetBool(b)
	case kindInt, kindInt64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return reflect.Value{}, invalid("invalid integer %q (want a whole number such as 42)", s)
		}
		v.SetInt(n)
	case kindUint16:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil {
			return reflect.Value{}, invalid("invalid number %q (want a whole number from 0 to 65535)", s)
		}
		v.SetUint(n)
	case kindFloat64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return reflect.Value{}, invalid("invalid number %q (want a decimal number such as 0.5)", s)
		}
		v.SetFloat(f)
	case kindDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return reflect.Value{}, invalid("invalid duration %q (use Go syntax such as 10s or 1m30s)", s)
		}
		v.SetInt(int64(d))
	default:
		panic(fmt.Sprintf("config: parseScalar called for %v", k))
	}
	return v, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, invalid("invalid boolean %q (use true or false)", s)
}

// splitList splits a comma-separated list, trimming spaces around items and
// dropping empty ones, so "" is the empty list.
func splitList(s string) []string {
	items := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// parseMapItems parses a comma-separated list of KEY=VALUE items into m.
// A later item for the same key replaces an earlier one.
func parseMapItems(m map[string]string, s string) error {
	for _, item := range splitList(s) {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return invalid("invalid item %q (want KEY=VALUE)", item)
		}
		m[k] = strings.TrimSpace(v)
	}
	return nil
}

// parseText parses s, a flag argument or environment variable, as a whole
// value of f's type. Lists and maps are comma-separated.
func (f *field) parseText(s string) (reflect.Value, error) {
	switch f.kind {
	case kindList:
		return reflect.ValueOf(splitList(s)).Convert(f.typ), nil
	case kindMap:
		m := map[string]string{}
		if err := parseMapItems(m, s); err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(m).Convert(f.typ), nil
	}
	return parseScalar(f.kind, f.typ, s)
}

// format renders v, of kind k, in flag syntax. Zero values render as "",
// which is how the flag package recognises a default not worth printing.
func format(k kind, v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	switch k {
	case kindString:
		return v.String()
	case kindBool:
		return strconv.FormatBool(v.Bool())
	case kindInt, kindInt64:
		return strconv.FormatInt(v.Int(), 10)
	case kindUint16:
		return strconv.FormatUint(v.Uint(), 10)
	case kindFloat64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case kindDuration:
		return time.Duration(v.Int()).String()
	case kindList:
		return strings.Join(v.Convert(reflect.TypeFor[[]string]()).Interface().([]string), ",")
	case kindMap:
		m := v.Convert(reflect.TypeFor[map[string]string]()).Interface().(map[string]string)
		items := make([]string, 0, len(m))
		for k, v := range m {
			items = append(items, k+"="+v)
		}
		slices.Sort(items)
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}

// flagValue is the flag.Value of one key. Set records the value without
// touching the configuration; Load applies it last, so flags win over the
// file and the environment whatever order things happen in.
//
// The zero flagValue (f == nil) exists only because flag.PrintDefaults
// builds one to learn what a zero default looks like.
type flagValue struct {
	f       *field
	set     bool          // a value was given on the command line
	pending reflect.Value // valid when set; the value Load applies
}

func (v *flagValue) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	if v.set {
		return format(v.f.kind, v.pending)
	}
	return v.f.key.Default
}

// Set parses one occurrence of the flag. Lists and maps accumulate across
// repeated occurrences and accept comma-separated items.
func (v *flagValue) Set(s string) error {
	switch v.f.kind {
	case kindList:
		var items []string
		if v.set {
			items = v.pending.Convert(reflect.TypeFor[[]string]()).Interface().([]string)
		}
		items = append(slices.Clip(items), splitList(s)...)
		if items == nil {
			items = []string{}
		}
		v.pending = reflect.ValueOf(items).Convert(v.f.typ)
	case kindMap:
		m := map[string]string{}
		if v.set {
			for k, val := range v.pending.Convert(reflect.TypeFor[map[string]string]()).Interface().(map[string]string) {
				m[k] = val
			}
		}
		if err := parseMapItems(m, s); err != nil {
			return err
		}
		v.pending = reflect.ValueOf(m).Convert(v.f.typ)
	default:
		pv, err := parseScalar(v.f.kind, v.f.typ, s)
		if err != nil {
			return err
		}
		v.pending = pv
	}
	v.set = true
	return nil
}

// IsBoolFlag lets a bare --flag mean true for bool keys.
func (v *flagValue) IsBoolFlag() bool { return v.f != nil && v.f.kind == kindBool }

// Get implements flag.Getter: the value given on the command line, or nil.
func (v *flagValue) Get() any {
	if v.f == nil || !v.set {
		return nil
	}
	return v.pending.Interface()
}
