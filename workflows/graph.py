"""The step graph of a definition: who follows whom.

Both the validator (unreachable steps, loops with no exit) and the interpreter
(which step runs next) read the same edges from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from workflows.definition import END, ApprovalStep, ConditionalStep, Step


def default_next(steps: Sequence[Step], index: int) -> str:
    step = steps[index]
    if step.next:
        return step.next
    return steps[index + 1].id if index + 1 < len(steps) else END


def successors(steps: Sequence[Step], index: int) -> list[str]:
    """Every step id (or `end`) that may run after steps[index]."""
    step = steps[index]
    if isinstance(step, ConditionalStep):
        fallthrough = steps[index + 1].id if index + 1 < len(steps) else END
        return [step.then, step.else_ or fallthrough]
    out = [default_next(steps, index)]
    if isinstance(step, ApprovalStep) and step.on_reject:
        out.append(step.on_reject)
    return out


def edges(steps: Sequence[Step]) -> dict[str, list[str]]:
    return {s.id: successors(steps, i) for i, s in enumerate(steps)}


def reachable(steps: Sequence[Step]) -> set[str]:
    graph = edges(steps)
    seen: set[str] = set()
    todo = [steps[0].id] if steps else []
    while todo:
        node = todo.pop()
        if node in seen or node not in graph:
            continue
        seen.add(node)
        todo.extend(graph[node])
    return seen


def closed_loops(steps: Sequence[Step]) -> list[list[str]]:
    """Cycles that no edge leaves: once entered, the run would loop forever."""
    full = edges(steps)
    ids = set(full)
    graph = {k: [v for v in vs if v in ids] for k, vs in full.items()}
    loops = []
    for component in _strongly_connected(graph):
        nodes = set(component)
        is_cycle = len(component) > 1 or component[0] in graph[component[0]]
        if not is_cycle:
            continue
        exits = any(t not in nodes for n in component for t in full[n])
        if not exits:
            order = [s.id for s in steps if s.id in nodes]
            loops.append(order)
    return loops


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: a definition of thousands of steps in a chain
    would pass Python's recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, int]] = [(root, 0)]  # (node, next successor to look at)
        while work:
            v, i = work[-1]
            successors = graph.get(v, [])
            if i < len(successors):
                work[-1] = (v, i + 1)
                w = successors[i]
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out
