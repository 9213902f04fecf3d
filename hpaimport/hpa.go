package hpaimport

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// ParseHPAs reads the HPAs of a stream of manifests, named name in messages: every
// document of kind HorizontalPodAutoscaler (autoscaling/v2), and those among the items of a
// List or HorizontalPodAutoscalerList (kubectl get hpa -o yaml); documents of other kinds are
// skipped. Decoding is strict: an unknown field is an error naming the document's line. No
// HPA at all is an error.
func ParseHPAs(name string, data []byte) ([]autoscalingv2.HorizontalPodAutoscaler, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, fmt.Errorf("manifests %s: %w", name, locate(data, err))
	}
	var out []autoscalingv2.HorizontalPodAutoscaler
	for _, d := range docs {
		hpas, err := hpasOf(d)
		if err != nil {
			return nil, fmt.Errorf("manifests %s: %w", name, err)
		}
		out = append(out, hpas...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifests %s: no HorizontalPodAutoscaler in its %d documents", name, len(docs))
	}
	return out, nil
}

func hpasOf(d *yaml.Node) ([]autoscalingv2.HorizontalPodAutoscaler, error) {
	kind := lookup(d, "kind")
	if kind == nil {
		return nil, fmt.Errorf("line %d: a document without kind", d.Line)
	}
	switch kind.Value {
	case "HorizontalPodAutoscaler":
		h, err := decodeHPA(d)
		if err != nil {
			return nil, err
		}
		return []autoscalingv2.HorizontalPodAutoscaler{h}, nil
	case "List", "HorizontalPodAutoscalerList":
		items := lookup(d, "items")
		if items == nil || items.Kind != yaml.SequenceNode {
			return nil, nil
		}
		var out []autoscalingv2.HorizontalPodAutoscaler
		for _, it := range items.Content {
			if k := lookup(it, "kind"); k != nil && k.Value != "HorizontalPodAutoscaler" && kind.Value == "List" {
				continue
			}
			h, err := decodeHPA(it)
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
		return out, nil
	}
	return nil, nil
}

// decodeHPA decodes one HPA strictly, through JSON as the API machinery does.
func decodeHPA(n *yaml.Node) (autoscalingv2.HorizontalPodAutoscaler, error) {
	var h autoscalingv2.HorizontalPodAutoscaler
	if v := lookup(n, "apiVersion"); v != nil && v.Value != "autoscaling/v2" {
		return h, fmt.Errorf("line %d: HorizontalPodAutoscaler of apiVersion %s: the importer reads autoscaling/v2 (kubectl get hpa -o yaml serves it)", n.Line, v.Value)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return h, fmt.Errorf("line %d: %w", n.Line, err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return h, fmt.Errorf("line %d: %w", n.Line, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("HorizontalPodAutoscaler at line %d: %w", n.Line, err)
	}
	return h, nil
}
