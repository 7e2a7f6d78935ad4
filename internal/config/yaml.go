package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileErrors bounds how many problems one file reports, so that pointing
// --config at the wrong file does not flood the terminal.
const maxFileErrors = 10

// decodeYAML sets the keys that data, the contents of file, gives into cfg.
// It walks the parsed node tree against the struct itself, rather than
// unmarshalling, so that every problem names its key and line.
func (l *Loader) decodeYAML(cfg reflect.Value, file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		return &Error{File: file, Line: extra.Line, Err: errors.New("a second YAML document; a config file holds one (remove the --- line)")}
	}

	d := &fileDecoder{l: l, file: file, cfg: cfg}
	root := doc.Content[0] // a DocumentNode always has exactly one child
	switch root = resolve(root); {
	case isNull(root):
	case root.Kind == yaml.MappingNode:
		d.mapping(root, "")
	default:
		d.fail(root.Line, "", invalid("the top level is %s; want a mapping of keys such as \"listen: :8443\"", describe(root)))
	}
	if len(d.errs) > maxFileErrors {
		d.errs = append(d.errs[:maxFileErrors], fmt.Errorf("%s: too many errors", file))
	}
	return errors.Join(d.errs...)
}

// fileDecoder holds the state of one decodeYAML.
type fileDecoder struct {
	l    *Loader
	file string
	cfg  reflect.Value // the struct being filled
	errs []error
}

func (d *fileDecoder) fail(line int, key string, err error) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Err: err})
}

// mapping decodes a mapping node holding the keys under prefix.
func (d *fileDecoder) mapping(n *yaml.Node, prefix string) {
	seen := make(map[string]int) // key → line it was first set on
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			d.fail(kn.Line, prefix, invalid("a key is %s; keys must be plain names", describe(kn)))
			continue
		}
		if kn.ShortTag() == "!!merge" {
			d.fail(kn.Line, prefix, invalid("merge keys (<<) are not supported; write the keys out"))
			continue
		}
		name, path := kn.Value, joinPath(prefix, kn.Value)
		if first, dup := seen[name]; dup {
			d.errs = append(d.errs, &Error{File: d.file, Line: kn.Line, Key: path, FirstLine: first, Err: ErrDuplicateKey})
			continue
		}
		seen[name] = kn.Line

		// Key names never contain dots, so a dotted name is unknown even when
		// it spells out a path.
		if !strings.Contains(name, ".") {
			if f := d.l.byPath[path]; f != nil {
				d.leaf(f, vn)
				continue
			}
			if d.l.sections[path] {
				switch {
				case isNull(vn):
				case vn.Kind == yaml.MappingNode:
					d.mapping(vn, path)
				default:
					d.fail(vn.Line, path, invalid("got %s; want a mapping of the keys under %q", describe(vn), path))
				}
				continue
			}
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: kn.Line, Key: path, Err: ErrUnknownKey, Suggestion: closest(path, d.l.paths)})
	}
}

// leaf decodes the value of key f. A null leaves the value as it was.
func (d *fileDecoder) leaf(f *field, n *yaml.Node) {
	if isNull(n) {
		return
	}
	var v reflect.Value
	switch f.kind {
	case kindList:
		items, ok := d.list(f, n)
		if !ok {
			return
		}
		v = reflect.ValueOf(items).Convert(f.typ)
	case kindMap:
		m, ok := d.stringMap(f, n)
		if !ok {
			return
		}
		v = reflect.ValueOf(m).Convert(f.typ)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, f.key.Path, invalid("got %s; want a single %s", describe(n), f.kind))
			return
		}
		var err error
		if v, err = parseScalar(f.kind, f.typ, n.Value); err != nil {
			d.fail(n.Line, f.key.Path, err)
			return
		}
	}
	d.cfg.FieldByIndex(f.index).Set(v)
}

// list decodes a sequence of scalars, or one scalar as a one-item list.
func (d *fileDecoder) list(f *field, n *yaml.Node) ([]string, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, true
	case yaml.SequenceNode:
		items := make([]string, 0, len(n.Content))
		ok := true
		for _, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.fail(item.Line, f.key.Path, invalid("a list item is %s; want a single value", describe(item)))
				ok = false
				continue
			}
			items = append(items, item.Value)
		}
		return items, ok
	}
	d.fail(n.Line, f.key.Path, invalid("got %s; want a list", describe(n)))
	return nil, false
}

// stringMap decodes a mapping of scalars.
func (d *fileDecoder) stringMap(f *field, n *yaml.Node) (map[string]string, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, f.key.Path, invalid("got %s; want a mapping of names to values", describe(n)))
		return nil, false
	}
	m := make(map[string]string, len(n.Content)/2)
	seen := make(map[string]int)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode || isNull(kn) || kn.ShortTag() == "!!merge" {
			d.fail(kn.Line, f.key.Path, invalid("a key is %s; want a plain name", describe(kn)))
			ok = false
			continue
		}
		path := f.key.Path + "." + kn.Value
		if first, dup := seen[kn.Value]; dup {
			d.errs = append(d.errs, &Error{File: d.file, Line: kn.Line, Key: path, FirstLine: first, Err: ErrDuplicateKey})
			ok = false
			continue
		}
		seen[kn.Value] = kn.Line
		if vn.Kind != yaml.ScalarNode || isNull(vn) {
			d.fail(vn.Line, path, invalid("got %s; want a single value", describe(vn)))
			ok = false
			continue
		}
		m[kn.Value] = vn.Value
	}
	return m, ok
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	// The parser never makes an alias of an alias; the bound is for safety.
	for range 8 {
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the shape of a node for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if isNull(n) {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}
