"""The 50-digit oracle of the conformance suite: every quantity of the manifest written straight from its
definition in Python's `decimal` arithmetic (60 working digits; 110 for finite-difference gradients), on the
exact values of the float inputs. O(n²) per Gram; no NumPy reductions, so the values do not depend on a BLAS.

Matrices are lists of rows of Decimals. Nothing here imports cka.
"""
import decimal
from decimal import Decimal as D

WORKING_DIGITS = 60
GRADIENT_DIGITS = 110
GRADIENT_STEP = D("1e-35")  # central differences: error ~ step² (1e-70) and 10^-110 / step (1e-75)


def context(digits):
    return decimal.Context(prec=digits, Emax=999999, Emin=-999999)


def exact(a):
    """A 2-D NumPy array (float32 or float64) as rows of exact Decimals."""
    return [[D(float(v)) for v in row] for row in a.tolist()]


def transpose(x):
    return [list(col) for col in zip(*x)]


# --- Grams -------------------------------------------------------------------------------------------------

def gram_linear(x):
    n = len(x)
    k = [[D(0)] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            k[i][j] = k[j][i] = sum((a * b for a, b in zip(x[i], x[j])), D(0))
    return k


def squared_distances(x):
    n = len(x)
    d = [[D(0)] * n for _ in range(n)]
    for i in range(n):
        for j in range(i):
            d[i][j] = d[j][i] = sum(((a - b) * (a - b) for a, b in zip(x[i], x[j])), D(0))
    return d


def median(values, kind):
    """kind "mean_of_middle": NumPy's median (the mean of the two middle values of an even count);
    "lower": the lower of the two (torch.median)."""
    v = sorted(values)
    c = len(v)
    if c % 2 or kind == "lower":
        return v[(c - 1) // 2]
    return (v[c // 2 - 1] + v[c // 2]) / 2


def median_sigma2(x, of, pairs, kind, fraction):
    """σ² from a median rule: σ = fraction·√median(squared distances), or fraction·median(distances).
    pairs: "all" (the n² entries, the zero diagonal included), "off_diagonal" (i < j), "nonzero" (i < j and
    d > 0)."""
    d = squared_distances(x)
    n = len(x)
    values = []
    for i in range(n):
        for j in range(n):
            if pairs == "all" or (i < j and (pairs == "off_diagonal" or d[i][j] != 0)):
                values.append(d[i][j] if of == "squared_distances" else d[i][j].sqrt())
    m = median(values, kind)
    f = D(float(fraction))
    return f * f * m if of == "squared_distances" else (f * m) * (f * m)


def gram_rbf(x, sigma2):
    d = squared_distances(x)
    return [[(-v / (2 * sigma2)).exp() for v in row] for row in d]


def gram_polynomial(x, degree, gamma, coef0):
    g = gram_linear(x)
    gm, c0 = D(float(gamma)), D(float(coef0))
    return [[(gm * v + c0) ** degree for v in row] for row in g]


def cross_gram(a, b, kernel, sigma2=None):
    """K_ij = k(a_i, b_j) between two samples: kernel "linear" (⟨a, b⟩) or "rbf" (exp(−‖a − b‖²/(2σ²)))."""
    def k(u, v):
        if kernel == "linear":
            return sum((p * q for p, q in zip(u, v)), D(0))
        return (-sum(((p - q) ** 2 for p, q in zip(u, v)), D(0)) / (2 * sigma2)).exp()
    return [[k(u, v) for v in b] for u in a]


# --- HSIC and CKA ------------------------------------------------------------------------------------------

def centered(k):
    """HKH from row means: K_ij − r_i − r_j + m."""
    n = len(k)
    r = [sum(row, D(0)) / n for row in k]
    m = sum(r, D(0)) / n
    return [[k[i][j] - r[i] - r[j] + m for j in range(n)] for i in range(n)]


def inner(a, b):
    return sum((u * v for ra, rb in zip(a, b) for u, v in zip(ra, rb)), D(0))


def hsic(k, l, estimator, normalization="(n-1)^2"):
    """biased: tr(KHLH)/(n−1)² or /n²; unbiased: Song et al. (2012) eq. 5."""
    n = len(k)
    if estimator == "biased":
        return inner(centered(k), l) / (D(n - 1) ** 2 if normalization == "(n-1)^2" else D(n) ** 2)
    kt = [[v if i != j else D(0) for j, v in enumerate(row)] for i, row in enumerate(k)]
    lt = [[v if i != j else D(0) for j, v in enumerate(row)] for i, row in enumerate(l)]
    rk = [sum(row, D(0)) for row in kt]
    rl = [sum(row, D(0)) for row in lt]
    t1 = inner(kt, lt)
    t2 = sum(rk, D(0)) * sum(rl, D(0)) / ((n - 1) * (n - 2))
    t3 = 2 * sum((a * b for a, b in zip(rk, rl)), D(0)) / (n - 2)
    return (t1 + t2 - t3) / (n * (n - 3))


def lange(k, l):
    """Lange et al.: centre both Grams, zero their diagonals, take the cosine."""
    a, b = centered(k), centered(l)
    for i in range(len(a)):
        a[i][i] = b[i][i] = D(0)
    return inner(a, b) / (inner(a, a) * inner(b, b)).sqrt()


def cka(k, l, estimator):
    """HSIC(K, L)/√(HSIC(K, K)·HSIC(L, L)); None where the denominator is not positive (undefined)."""
    if estimator == "lange":
        return lange(k, l)
    kk, ll = hsic(k, k, estimator), hsic(l, l, estimator)
    if kk <= 0 or ll <= 0:
        return None
    return hsic(k, l, estimator) / (kk * ll).sqrt()


def minibatch_cka(kx_batches, ly_batches):
    """Nguyen et al. (2021): unbiased HSIC summed over the batches (each batch once), then the ratio."""
    kl = sum((hsic(k, l, "unbiased") for k, l in zip(kx_batches, ly_batches)), D(0))
    kk = sum((hsic(k, k, "unbiased") for k in kx_batches), D(0))
    ll = sum((hsic(l, l, "unbiased") for l in ly_batches), D(0))
    return kl / (kk * ll).sqrt()


# --- MMD and the CKA–MMD decomposition ---------------------------------------------------------------------

def mmd2(kxx, kyy, kxy, estimator):
    m, n = len(kxx), len(kyy)
    if estimator == "biased":
        sxx, syy = sum(map(sum, kxx), D(0)), sum(map(sum, kyy), D(0))
        px, py = D(m * m), D(n * n)
    else:
        sxx = sum((v for i, row in enumerate(kxx) for j, v in enumerate(row) if i != j), D(0))
        syy = sum((v for i, row in enumerate(kyy) for j, v in enumerate(row) if i != j), D(0))
        px, py = D(m * (m - 1)), D(n * (n - 1))
    sxy = sum(map(sum, kxy), D(0))
    return sxx / px + syy / py - 2 * sxy / (m * n)


def decomposition(k, l, centered_grams):
    """Zhou et al. (2024) §3 on the Grams K, L (centered first if asked): K̂ = K/‖K‖_F, a = ⟨K̂, L̂⟩,
    discrepancy ½‖K̂ − L̂‖², mean gap g = mean K̂ − mean L̂, bound 1 − (N²/2)·g²."""
    if centered_grams:
        k, l = centered(k), centered(l)
    n = len(k)
    nk, nl = inner(k, k).sqrt(), inner(l, l).sqrt()
    kh = [[v / nk for v in row] for row in k]
    lh = [[v / nl for v in row] for row in l]
    diff = [[a - b for a, b in zip(ra, rb)] for ra, rb in zip(kh, lh)]
    gap = (sum(map(sum, kh), D(0)) - sum(map(sum, lh), D(0))) / (n * n)
    return {"alignment": inner(kh, lh), "discrepancy": inner(diff, diff) / 2, "mean_gap": gap,
            "bound": 1 - D(n * n) / 2 * gap * gap}


# --- The RCKA losses --------------------------------------------------------------------------------------

def alignment(s, t, form):
    """The relation alignment of rows S and T. form "centered" (the paper): linear CKA of the column-centered
    rows, ⟨K_s, K_t⟩/(‖K_s‖‖K_t‖) with K = S_c S_cᵀ; "row_scaled_uncentered" (the official code): K = SSᵀ,
    P_ij = K_ij/√K_ii, the cosine of P_s and P_t."""
    def relation(x):
        if form == "centered":
            cols = transpose(x)
            means = [sum(c, D(0)) / len(c) for c in cols]
            x = [[v - mu for v, mu in zip(row, means)] for row in x]
            return gram_linear(x)
        k = gram_linear(x)
        return [[v / k[i][i].sqrt() for v in row] for i, row in enumerate(k)]
    a, b = relation(s), relation(t)
    return inner(a, b) / (inner(a, a) * inner(b, b)).sqrt()


def sample_loss(s, t, form):
    return 1 - alignment(s, t, form)


def class_loss(s, t, form):
    return 1 - alignment(transpose(s), transpose(t), form)


def rcka_loss(s, t, form, sample, cls):
    return D(float(sample)) * sample_loss(s, t, form) + D(float(cls)) * class_loss(s, t, form)


def patch_rows(maps, channel, ph, pw):
    """Rows of one channel's patch relation: patch (gy, gx) holds the B·ph·pw values under it."""
    b, h, w = len(maps), len(maps[0][channel]), len(maps[0][channel][0])
    rows = []
    for gy in range(h // ph):
        for gx in range(w // pw):
            rows.append([maps[i][channel][gy * ph + dy][gx * pw + dx]
                         for i in range(b) for dy in range(ph) for dx in range(pw)])
    return rows


def patch_loss(s, t, form, patch_h, patch_w):
    """PCKA: the mean over channels of the relation loss of the patch rows (maps B×C×H×W, sides multiples of
    the patch)."""
    channels = len(s[0])
    return sum((sample_loss(patch_rows(s, c, patch_h, patch_w), patch_rows(t, c, patch_h, patch_w), form)
                for c in range(channels)), D(0)) / channels


def gradient(loss, s, index_sets):
    """∂loss/∂s by central differences at GRADIENT_DIGITS: (loss(s + h·e) − loss(s − h·e))/(2h) for each
    element, addressed by a setter over `index_sets` (the index tuples of s's elements)."""
    with decimal.localcontext(context(GRADIENT_DIGITS)):
        grads = []
        for idx in index_sets:
            values = []
            for step in (GRADIENT_STEP, -GRADIENT_STEP):
                moved = _copy(s)
                _set(moved, idx, _get(s, idx) + step)
                values.append(loss(moved))
            grads.append((values[0] - values[1]) / (2 * GRADIENT_STEP))
    return grads


def _copy(x):
    return [_copy(v) for v in x] if isinstance(x, list) else x


def _get(x, idx):
    for i in idx:
        x = x[i]
    return x


def _set(x, idx, value):
    for i in idx[:-1]:
        x = x[i]
    x[idx[-1]] = value
