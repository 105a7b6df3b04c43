// Command kube-apiserver is the upstream kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app),
// started exactly as the upstream command would be, for the project's test bed.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
