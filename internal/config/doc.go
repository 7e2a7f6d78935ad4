// Package config gives every fluidity command the same configuration
// behaviour: one set of keys, settable from a YAML file, FLUIDITY_*
// environment variables and command-line flags.
//
// A command describes its configuration as a plain struct whose fields carry
// yaml tags, fills it with defaults, and binds it to its flag set:
//
//	cfg := server.Config{Listen: ":8443"}
//	l := config.Bind(fs, &cfg)
//	if err := fs.Parse(args); err != nil { ... }
//	if err := l.Load(os.Environ()); err != nil { ... }
//
// # Precedence
//
// Each key takes the value of the highest of these sources that sets it:
//
//  1. the default, the value the struct held when it was bound;
//  2. the YAML file named by --config FILE, or else by FLUIDITY_CONFIG;
//  3. the environment variable of the key;
//  4. the flag of the key, when it is given on the command line.
//
// A list or map set by a source replaces the one from a lower source; the
// items are not merged.
//
// # Names
//
// A key's path is the yaml names from the top of the file down to the key,
// joined by dots: allow_hosts under egress is egress.allow_hosts. From the
// path:
//
//   - the flag is the path with dots and underscores turned into dashes:
//     --egress-allow-hosts. A field tag flag:"name" chooses another name
//     and flag:"-" gives the key no flag.
//   - the environment variable is FLUIDITY_ and the path in upper case
//     with dots and dashes turned into underscores:
//     FLUIDITY_EGRESS_ALLOW_HOSTS. A field tag env:"-" gives the key no
//     variable.
//
// flag:"-" or env:"-" on a nested struct applies to every key inside it.
// Every command also has --config FILE, whose variable is FLUIDITY_CONFIG.
//
// # Values
//
// Flags and environment variables use the same syntax:
//
//   - bool: true, false, 1, 0, yes or no, in any case; a bare flag
//     (--allow-private) means true.
//   - int, int64, uint16: a decimal whole number in the type's range.
//   - float64: a decimal number.
//   - duration: Go syntax such as 10s, 1m30s or 250ms.
//   - list: items separated by commas (a,b,c). A flag can also be
//     repeated: --iam-allow a --iam-allow b,c gives a, b and c. An empty
//     value gives the empty list.
//   - map: KEY=VALUE items separated by commas, or in repeated flags.
//
// In the YAML file, scalars take the same syntax, a list is a YAML sequence
// (a single value is a one-item list) and a map is a YAML mapping. A key set
// to null (or left empty) keeps its default.
//
// # Errors
//
// Load rejects what it does not understand rather than ignoring it, and
// names the key and the fix: an unknown key in the file, with its line and
// the closest known key; a key set twice in one mapping; a value of the
// wrong type; and any FLUIDITY_* variable that is not a key, unless the
// command has claimed it with Loader.IgnoreEnv. For example:
//
//	config.yaml:3: unknown key "egress.alow_hosts" (did you mean "egress.allow_hosts"?)
//	config.yaml:5: key "handshake_timeout": invalid duration "10 seconds" (use Go syntax such as 10s or 1m30s)
//	unknown environment variable FLUIDITY_LOG_LEVL (did you mean FLUIDITY_LOG_LEVEL?)
//
// Rules that relate several keys live in the struct's Validate method, which
// Load calls after reading every source.
package config
