//go:build tools

// Package tools only records the Go reference as a dependency of this module (see go.mod); it
// is never built.
package tools

import _ "k8s.io/cloud-provider-openstack/pkg/version"
