package deploy

import (
	"embed"
	"io/fs"
)

//go:embed templates/*.yaml
var templateFS embed.FS

// Template names: the stacks Deploy makes, NAME-exit and NAME-control.
const (
	ExitTemplate    = "exit"
	ControlTemplate = "control"
)

// Template returns the embedded template called name (ExitTemplate,
// ControlTemplate).
func Template(name string) []byte {
	data, err := fs.ReadFile(templateFS, "templates/"+name+".yaml")
	if err != nil {
		panic("deploy: no template " + name)
	}
	return data
}
