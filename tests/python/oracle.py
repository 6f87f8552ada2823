"""Independent NumPy statements of the formulas (float64, Gram matrices in full, nothing from cka)."""
import numpy as np


def center(k):
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ k @ h


def hsic(k, l, debiased=False):
    n = len(k)
    if not debiased:
        return np.trace(center(k) @ center(l)) / (n - 1) ** 2
    kt = k - np.diag(np.diag(k))
    lt = l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def gram_cka(k, l, debiased=False):
    return hsic(k, l, debiased) / np.sqrt(hsic(k, k, debiased) * hsic(l, l, debiased))


def squared_distances(x):
    x = np.asarray(x, dtype=np.float64)
    return np.array([[np.sum((a - b) ** 2) for b in x] for a in x]) if len(x) <= 60 else \
        np.maximum(np.sum(x * x, 1)[:, None] + np.sum(x * x, 1)[None, :] - 2 * x @ x.T, 0)


def median_distance(d, rule="all_pairs"):
    if rule == "all_pairs":
        return np.median(d)
    upper = d[np.triu_indices(len(d), 1)]
    if rule == "nonzero":
        upper = upper[upper > 0]
    return np.median(upper)


def gram(x, kernel):
    """kernel: ('linear',), ('rbf', sigma), ('median', fraction, rule), ('poly', degree, gamma, coef0)."""
    x = np.asarray(x, dtype=np.float64)
    if kernel[0] == "linear":
        return x @ x.T
    if kernel[0] == "poly":
        _, degree, gamma, coef0 = kernel
        return (gamma * x @ x.T + coef0) ** degree
    d = squared_distances(x)
    sigma2 = kernel[1] ** 2 if kernel[0] == "rbf" else kernel[1] ** 2 * median_distance(d, kernel[2])
    return np.exp(-d / (2 * sigma2))


def linear_cka(x, y, debiased=False):
    return gram_cka(gram(x, ("linear",)), gram(y, ("linear",)), debiased)


def kernel_cka(x, y, kernel, debiased=False):
    return gram_cka(gram(x, kernel), gram(y, kernel), debiased)


def mmd2(x, y, kernel, debiased=False):
    m = len(x)
    k = gram(np.vstack([x, y]), kernel)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    if not debiased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    n = len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean())


def mmd_bound(x, y, kernel=("linear",), centered=False):
    k, l = gram(x, kernel), gram(y, kernel)
    if centered:
        k, l = center(k), center(l)
    k, l = k / np.linalg.norm(k), l / np.linalg.norm(l)
    n = len(k)
    gap = k.mean() - l.mean()
    return (np.sum(k * l), 1.0, 0.5 * np.sum((k - l) ** 2), gap, 1.0 - n * n / 2.0 * gap * gap)


def alignment(gs, gt, centered=True, row_normalize=False, debiased=False):
    if row_normalize:
        gs = gs / np.sqrt(np.diag(gs))[:, None]
        gt = gt / np.sqrt(np.diag(gt))[:, None]
    if centered:
        return gram_cka(gs, gt, debiased)
    return np.sum(gs * gt) / (np.linalg.norm(gs) * np.linalg.norm(gt))


def sample_relation_loss(s, t, **o):
    s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
    return 1.0 - alignment(s @ s.T, t @ t.T, **o)


def class_relation_loss(s, t, **o):
    s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
    return 1.0 - alignment(s.T @ s, t.T @ t, **o)


def rcka_loss(s, t, sample=1.0, cls=1.0, **o):
    return sample * sample_relation_loss(s, t, **o) + cls * class_relation_loss(s, t, **o)


def patch_loss(s, t, ph, pw):
    """PCKA for H, W multiples of the patch: per channel, the rows are the patches (all samples' pixels)."""
    s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
    b, c, h, w = s.shape

    def rows(m, ch):
        return np.array([m[:, ch, i:i + ph, j:j + pw].ravel() for i in range(0, h, ph) for j in range(0, w, pw)])

    return np.mean([1.0 - gram_cka(rows(s, ch) @ rows(s, ch).T, rows(t, ch) @ rows(t, ch).T) for ch in range(c)])


def minibatch_cka(x, y, batch):
    n = (len(x) // batch) * batch
    kl = kk = ll = 0.0
    for i in range(0, n, batch):
        k, l = gram(x[i:i + batch], ("linear",)), gram(y[i:i + batch], ("linear",))
        kl += hsic(k, l, True)
        kk += hsic(k, k, True)
        ll += hsic(l, l, True)
    return kl / np.sqrt(kk * ll)
