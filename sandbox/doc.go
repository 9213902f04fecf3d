// Package sandbox runs a real local Kubernetes control plane for prescale's demo and
// end-to-end tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kwok managing simulated GPU nodes, Prometheus and, as an option, Karpenter's kwok
// provider growing a NodePool of them, all on loopback with free ports, in one state
// folder.
//
// The binaries are built by tools/build.sh (make tools); Options.BinDir names their
// folder. Up starts the components detached (they outlive the calling process) and
// records them in the state folder; Down stops them from that record.
//
// It must not be imported by policy/, forecast/ or scaler/.
package sandbox
