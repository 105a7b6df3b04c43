// Pins the Go reference (cloud-provider-openstack's k8s-keystone-auth and client-keystone-auth)
// that the differential tests and the benchmark run beside this project's binaries. Test
// equipment only: nothing of it is shipped or copied here; build.sh builds it from the module
// proxy. Its go.sum line is what makes the download verifiable.
module github.com/kubernetes-keystone/kubernetes-keystone/tests/go-reference

go 1.26.0

require k8s.io/cloud-provider-openstack v1.36.0
