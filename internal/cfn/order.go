package cfn

import (
	"fmt"
	"slices"
	"strings"
)

// CycleError is the error of CreationOrder when resources depend on each
// other in a circle.
type CycleError struct {
	// Cycle lists the logical IDs of a circle, in document order of its
	// first member, the first repeated at the end: A → B → A.
	Cycle []string
}

func (e *CycleError) Error() string {
	return "circular dependency between resources: " + strings.Join(e.Cycle, " → ")
}

// Dependencies returns the logical IDs of the resources id depends on,
// sorted: those of its DependsOn, and those its properties name in a Ref,
// an Fn::GetAtt or an Fn::Sub variable (in both branches of an Fn::If).
// Names of parameters and pseudo-parameters, and names of nothing, are
// left out.
func (t *Template) Dependencies(id string) []string {
	r, ok := t.Resources[id]
	if !ok {
		return nil
	}
	set := map[string]bool{}
	for _, d := range r.DependsOn {
		if _, ok := t.Resources[d]; ok {
			set[d] = true
		}
	}
	refTargets(r.Properties, func(name string) {
		if _, ok := t.Resources[name]; ok {
			set[name] = true
		}
	})
	return sortedKeys(set)
}

// CreationOrder returns the logical IDs of all resources in an order in
// which each comes after every resource it depends on; among resources
// free to go, the one declared first goes first. It returns a
// *CycleError when there is no such order.
func (t *Template) CreationOrder() ([]string, error) {
	deps := make(map[string][]string, len(t.order))
	for _, id := range t.order {
		deps[id] = t.Dependencies(id)
	}
	placed := make(map[string]bool, len(t.order))
	order := make([]string, 0, len(t.order))
	for len(order) < len(t.order) {
		progress := false
		for _, id := range t.order {
			if placed[id] {
				continue
			}
			ready := true
			for _, d := range deps[id] {
				if !placed[d] {
					ready = false
					break
				}
			}
			if ready {
				placed[id] = true
				order = append(order, id)
				progress = true
				break
			}
		}
		if !progress {
			cycles := t.cycles(deps)
			return nil, &CycleError{Cycle: cycles[0]}
		}
	}
	return order, nil
}

// DeletionOrder is CreationOrder reversed: each resource goes before the
// resources it depends on.
func (t *Template) DeletionOrder() ([]string, error) {
	order, err := t.CreationOrder()
	slices.Reverse(order)
	return order, err
}

// cycles returns one circle through each strongly connected component of
// the dependency graph that has one, in document order of their first
// members. deps must hold the dependencies of every resource.
func (t *Template) cycles(deps map[string][]string) [][]string {
	// Tarjan's algorithm, visiting in document order.
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var comps [][]string
	var visit func(v string)
	visit = func(v string) {
		index[v] = len(index)
		low[v] = index[v]
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range deps[v] {
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 || slices.Contains(deps[v], v) {
				comps = append(comps, comp)
			}
		}
	}
	for _, id := range t.order {
		if _, seen := index[id]; !seen {
			visit(id)
		}
	}
	pos := make(map[string]int, len(t.order))
	for i, id := range t.order {
		pos[id] = i
	}
	var out [][]string
	for _, comp := range comps {
		in := map[string]bool{}
		first := comp[0]
		for _, id := range comp {
			in[id] = true
			if pos[id] < pos[first] {
				first = id
			}
		}
		out = append(out, circleFrom(first, in, deps))
	}
	slices.SortFunc(out, func(a, b []string) int { return pos[a[0]] - pos[b[0]] })
	return out
}

// circleFrom returns a shortest circle from start through the component
// in back to start.
func circleFrom(start string, in map[string]bool, deps map[string][]string) []string {
	// Breadth-first search for the shortest way back to start.
	prev := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range deps[v] {
			if !in[w] {
				continue
			}
			if w == start {
				path := []string{start}
				for x := v; x != start; x = prev[x] {
					path = append(path, x)
				}
				path = append(path, start)
				// path runs backwards from the end; reverse the middle.
				slices.Reverse(path[1 : len(path)-1])
				return path
			}
			if _, seen := prev[w]; !seen {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	panic(fmt.Sprintf("cfn: no circle through %s in its component", start))
}
