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
        key = (node, token)
        if key not in self._children:
            self._children[key] = len(self.parent)
            self.parent.append(node)
            self.token.append(token)
            self.depth.append(self.depth[node] + 1)
        return self._children[key]

    def labels(self, node: int) -> List[int]:
        """The label sequence of ``node``."""
        labels = []
        while node > 0:
            labels.append(self.token[node])
            node = self.parent[node]
        return labels[::-1]
