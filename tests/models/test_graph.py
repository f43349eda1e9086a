import torch

from diffpose3d.models.graph import (
    ChebConv,
    GraphTransformerBlock,
    adjacency_from_parents,
    chebyshev_polynomials,
    normalized_laplacian,
    scaled_laplacian,
)

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8]


def test_adjacency() -> None:
    adj = adjacency_from_parents(PARENTS)
    assert torch.equal(adj, adj.T)
    assert adj.sum() == 2 * (len(PARENTS) - 1)
    assert adj.diagonal().sum() == 0
    assert adj[3, 2] == 1 and adj[2, 3] == 1 and adj[3, 0] == 0
    assert torch.equal(adjacency_from_parents(PARENTS, self_loops=True).diagonal(), torch.ones(len(PARENTS)))


def test_laplacians() -> None:
    adj = adjacency_from_parents(PARENTS).double()
    lap = normalized_laplacian(adj)
    eig = torch.linalg.eigvalsh(lap)
    assert abs(eig.min()) < 1e-9 and eig.max() <= 2 + 1e-9  # connected graph: one zero eigenvalue
    eig_s = torch.linalg.eigvalsh(scaled_laplacian(adj))
    assert eig_s.min() >= -1 - 1e-9 and abs(eig_s.max() - 1) < 1e-9
    polys = chebyshev_polynomials(scaled_laplacian(adj), 3)
    assert polys.shape == (4, len(PARENTS), len(PARENTS))
    x = scaled_laplacian(adj)
    assert torch.allclose(polys[3], 4 * x @ x @ x - 3 * x)


def test_chebconv_matches_loop() -> None:
    torch.manual_seed(0)
    adj = adjacency_from_parents(PARENTS)
    for K in (1, 2, 3):
        conv = ChebConv(6, 4, adj, K=K)
        torch.nn.init.normal_(conv.bias)
        x = torch.randn(3, 2, len(PARENTS), 6)
        T = chebyshev_polynomials(scaled_laplacian(adj), K)
        expected = torch.zeros(3, 2, len(PARENTS), 4)
        for a in range(3):
            for b in range(2):
                for k in range(K + 1):
                    expected[a, b] += T[k] @ x[a, b] @ conv.weight[k]
        expected += conv.bias
        assert torch.allclose(conv(x), expected, atol=1e-5)
        assert conv(x[0, 0]).shape == (len(PARENTS), 4)


def test_chebconv_is_local_and_not_in_checkpoints() -> None:
    adj = adjacency_from_parents(PARENTS)
    conv = ChebConv(1, 1, adj, K=1, bias=False)
    x = torch.zeros(1, len(PARENTS), 1)
    x[0, 3] = 1.0  # a leaf: order 1 reaches itself and its parent only
    y = conv(x)[0, :, 0]
    assert set(torch.nonzero(y).flatten().tolist()) <= {2, 3}
    assert set(conv.state_dict()) == {"weight"}


def test_block_keeps_shape_and_uses_conditioning() -> None:
    torch.manual_seed(0)
    block = GraphTransformerBlock(16, adjacency_from_parents(PARENTS), heads=4)
    x = torch.randn(5, len(PARENTS), 16)
    assert block(x).shape == x.shape
    assert not torch.allclose(block(x), block(x, torch.randn(5, 16)))
