package sandbox

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// APIService describes an extension apiserver running outside the sandbox, e.g. prescale
// run --external-metrics, to register with the aggregator.
type APIService struct {
	Group, Version string // e.g. external.metrics.k8s.io, v1beta1
	// Namespace and Service name the selector-less Service (and its EndpointSlice) the
	// APIService points to.
	Namespace, Service string
	// Host and Port are where the server listens. The aggregator dials them directly
	// (--enable-aggregator-routing=true).
	Host net.IP
	Port int
	// CABundle verifies the server's certificate (State.CACertPEM when the certificate
	// comes from State.IssueServingCert).
	CABundle []byte
}

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// RegisterAPIService creates (or replaces) the Service, EndpointSlice and APIService that
// route a.Group/a.Version to a.Host:a.Port. There is no kube-proxy in the sandbox, so the
// Service has no selector and its EndpointSlice is written here; the aggregator resolves it
// to the endpoint's address because the sandbox's apiserver runs with
// --enable-aggregator-routing=true.
func (s *State) RegisterAPIService(ctx context.Context, a APIService) error {
	cfg, err := s.RESTConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	const portName = "https"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Service},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: 443,
			TargetPort: intstr.FromInt32(int32(a.Port)), Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := kube.CoreV1().Services(a.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service %s/%s: %w", a.Namespace, a.Service, err)
	}
	family := discoveryv1.AddressTypeIPv4
	if a.Host.To4() == nil {
		family = discoveryv1.AddressTypeIPv6
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Service,
			Labels: map[string]string{discoveryv1.LabelServiceName: a.Service, discoveryv1.LabelManagedBy: "prescale-sandbox"}},
		AddressType: family,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{a.Host.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(int32(a.Port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	slices := kube.DiscoveryV1().EndpointSlices(a.Namespace)
	if err := slices.Delete(ctx, a.Service, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replace endpointslice %s/%s: %w", a.Namespace, a.Service, err)
	}
	if _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create endpointslice %s/%s for %s: %w", a.Namespace, a.Service, net.JoinHostPort(a.Host.String(), strconv.Itoa(a.Port)), err)
	}
	name := a.Version + "." + a.Group
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"group": a.Group, "version": a.Version,
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"service":  map[string]any{"namespace": a.Namespace, "name": a.Service, "port": int64(443)},
			"caBundle": base64.StdEncoding.EncodeToString(a.CABundle), // []byte in JSON
		},
	}}
	apis := dyn.Resource(apiServiceGVR)
	if err := apis.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replace apiservice %s: %w", name, err)
	}
	if _, err := apis.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create apiservice %s: %w", name, err)
	}
	return nil
}

// HostIP returns a non-loopback IPv4 address of this machine. The apiserver refuses
// loopback addresses in EndpointSlices ("may not be in the loopback range"), so an extension
// apiserver on the sandbox listens on this address instead, which the aggregator can dial
// just as well from the same machine.
func HostIP() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.To4(), nil
			}
		}
	}
	return nil, fmt.Errorf("no non-loopback IPv4 address: an APIService cannot point to a loopback endpoint")
}
