// Command openfga-language is a thin oracle around the official OpenFGA
// language transformer, used by the Rust differential tests.
//
// Usage:
//
//	openfga-language dsl <file.fga>              # one model file -> JSON
//	openfga-language modules <a.fga> [b.fga...]  # module files -> combined schema 1.2 JSON
//
// Module files are passed to TransformModuleFilesToModel under their base
// name, in argument order. Errors go to stderr with exit code 1.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/openfga/language/pkg/go/transformer"
	"google.golang.org/protobuf/encoding/protojson"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: openfga-language dsl <file> | modules <file>...")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(out)
}

func run(mode string, files []string) (string, error) {
	switch mode {
	case "dsl":
		text, err := os.ReadFile(files[0])
		if err != nil {
			return "", err
		}
		return transformer.TransformDSLToJSON(string(text))
	case "modules":
		modules := make([]transformer.ModuleFile, 0, len(files))
		for _, path := range files {
			text, err := os.ReadFile(path)
			if err != nil {
				return "", err
			}
			modules = append(modules, transformer.ModuleFile{Name: filepath.Base(path), Contents: string(text)})
		}
		model, err := transformer.TransformModuleFilesToModel(modules, "1.2")
		if err != nil {
			return "", err
		}
		bytes, err := protojson.Marshal(model)
		return string(bytes), err
	default:
		return "", fmt.Errorf("unknown mode %q", mode)
	}
}
