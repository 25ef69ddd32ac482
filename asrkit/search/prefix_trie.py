"""Label prefixes as trie nodes, shared by the CTC and transducer beam searches."""

from typing import Dict, List, Tuple


class PrefixTrie:
    """Label prefixes as nodes of a trie: equal prefixes share one node id, so hypotheses that reach the same
    labels by different paths merge by id. Node 0 is the empty prefix."""

    def __init__(self) -> None:
        self.parent: List[int] = [-1]
        self.token: List[int] = [-1]
        self.depth: List[int] = [0]
        self._children: Dict[Tuple[int, int], int] = {}

    def child(self, node: int, token: int) -> int:
        """The node of prefix ``node`` followed by ``token``, created on first use."""
        return self.children([node], [token])[0]

    def children(self, nodes: List[int], tokens: List[int]) -> List[int]:
        """:meth:`child` of each pair ``(nodes[i], tokens[i])``, in bulk: a beam search extends many
        hypotheses per frame, and one call per extension cost more than the rest of the search."""
        keys = list(zip(nodes, tokens))
        new = [key for key in dict.fromkeys(keys) if key not in self._children]  # a pair may come twice
        if new:
            first = len(self.parent)
            self._children.update(zip(new, range(first, first + len(new))))
            self.parent.extend(node for node, _ in new)
            self.token.extend(token for _, token in new)
            self.depth.extend(self.depth[node] + 1 for node, _ in new)
        return [self._children[key] for key in keys]

    def labels(self, node: int) -> List[int]:
        """The label sequence of ``node``."""
        labels = []
        while node > 0:
            labels.append(self.token[node])
            node = self.parent[node]
        return labels[::-1]
