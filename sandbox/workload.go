package sandbox

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Workload describes a simulated GPU inference Deployment.
type Workload struct {
	Namespace    string
	Name         string
	Replicas     int32
	GPUs         int           // nvidia.com/gpu per pod
	StartupDelay time.Duration // time from binding to Ready (model load)
	// NodeSelector adds to the pods' nodeSelector (which asks for nvidia.com/gpu.present),
	// e.g. karpenter.sh/nodepool to keep a workload on the nodes of one NodePool.
	NodeSelector map[string]string
}

// Deployment returns the Deployment of w: pods that ask for w.GPUs GPUs, are placed
// on the sandbox's GPU nodes by the scheduler, and become Ready StartupDelay after
// they are bound (kwok reads StartupDelayAnnotation).
func (w Workload) Deployment() *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": w.Name}
	selector := map[string]string{"nvidia.com/gpu.present": "true"}
	maps.Copy(selector, w.NodeSelector)
	gpus := resource.MustParse(strconv.Itoa(w.GPUs))
	zero := int64(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &w.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      labels,
					Annotations: map[string]string{StartupDelayAnnotation: w.StartupDelay.String()},
				},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &zero,
					NodeSelector:                  selector,
					Containers: []corev1.Container{{
						Name:  "vllm",
						Image: "vllm/vllm-openai:simulated",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{GPUResource: gpus},
							Limits:   corev1.ResourceList{GPUResource: gpus},
						},
					}},
				},
			},
		},
	}
}

// Apply creates the namespace and the Deployment of w, or updates the Deployment.
func (w Workload) Apply(ctx context.Context, c kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", w.Namespace, err)
	}
	d := w.Deployment()
	_, err := c.AppsV1().Deployments(w.Namespace).Create(ctx, d, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = c.AppsV1().Deployments(w.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("apply deployment %s/%s: %w", w.Namespace, w.Name, err)
	}
	return nil
}
