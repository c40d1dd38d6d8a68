"""Make golden.npz: the reference's own TF training/inference preprocessing, with every random draw recorded.

Runs the reference repo's unmodified `src/tf/augment.py` and `src/tf/preprocess.py` (chenghuige,
Google-American_Sign_Language_Fingerspelling_Recognition, projects/kaggle/aslfr) inside tf.data, as in
training, with small stand-ins for gezi / melt / src.config (the final config's flags; melt's
Apply / OneOf logic). `tf.random.uniform` is wrapped so that each draw is recorded (value, low, high,
shape, dtype and the call site); some cases force chosen values (gates, resample rate and method) so
that every path and every resize method is covered. `tf.image.resize` is wrapped to record the method
and sizes actually used. Direct `tf.image.resize` outputs per method are stored too.

TensorFlow is never a dependency of aslfr: run this in a throwaway venv.

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy
    # the reference code is not vendored here: point --ref-src at a checkout's src/tf directory
    /tmp/tfvenv/bin/python tests/golden/train_pipeline/make_golden.py --ref-src REPO/projects/kaggle/aslfr/src/tf

The normalization's reciprocal is CPU-dependent in TF (see functional.reciprocal), so TF's own
reciprocal(stds) is stored as `tf_inv_stds` for the bit-exact comparisons."""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402  (only here, in the throwaway venv)

HERE = Path(__file__).resolve().parent
N_COLS = 384
SITES_GATE = ["flip_lr", "scale", "rotate", "shift", "temporal_seq_mask", "resample", "temporal_mask"]

# ---------------------------------------------------------------------------------------------
# stand-ins for the reference's gezi / melt / src.config


class _Flags:
    """The final config's effective flag values, nothing else: an unknown flag is an error."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, k):
        raise AttributeError(f"flag {k!r} is not set in the stand-in FLAGS")


def final_flags(root: str) -> _Flags:
    return _Flags(
        root=root, n_frames=320, use_aug=True,
        flip_rate=0.25, scale_rate=0.75, rotate_rate=0.75, shift_rate=0.75,
        scale_method=0, scale_range=[0.8, 1.2], rotate_range=[-15.0, 15.0],
        shift_method=1, shift_range=[-0.05, 0.05], affine_rate=0.0,
        temporal_seq_mask_rate=0.5, temporal_seq_mask_range=[0.1, 0.2],
        resample_rate=0.8, resample_range=[0.5, 1.5],
        temporal_mask_rate=0.8, temporal_mask_prob=0.5 * (320 / 320.0), temporal_mask_range=[],
        spatio_mask_rate=0.0, spatio_mask_prob=0.15,
        norm_frames=True, concat_frames=True, concat_frames_dim=-2,
        add_pos=True, add_pos_before_resample=True, use_z=True,
        pad_frames=True, pad_method="zero", trunct_method="resize", resize_method="bilinear",
        always_resize=False, filter_nan_hands=False, mask_nan_hands=False,
        clip_input=False, clip_xy=False, dominant_flip=False, pred_flip=False, force_flip=False,
        norm_hands=False, norm_hands_size=False, add_motion=False,
        encode_pool_size=2, min_frames=0,
    )


def install_standins(ref_src: Path, root: str):
    """Register gezi, gezi.common, melt, src, src.config and src.tf (whose path is ref_src)."""
    gezi = types.ModuleType("gezi")
    gezi.load = lambda path: np.load(path)
    common = types.ModuleType("gezi.common")
    for k, v in dict(tf=tf, np=np, gezi=gezi, os=os, math=math, ic=lambda *a, **k: None).items():
        setattr(common, k, v)
    gezi.common = common

    melt = types.ModuleType("melt")

    def apply(func, x, p=0.5):
        # melt.ops.apply: no draw when p <= 0, else one U[0,1) draw compared in float32
        if p <= 0:
            return x
        return tf.cond(tf.less(tf.random.uniform([], minval=0, maxval=1, dtype=tf.float32), tf.cast(p, tf.float32)),
                       lambda: func(x), lambda: x)

    class Apply:
        def __init__(self, func, p):
            self.func, self.p = func, p

        def __call__(self, x):
            return apply(self.func, x, self.p)

    def oneof(funcs, x, p=1.0):
        # melt.ops.oneof, quirk included: every f_i with u <= (i+1) p / n is applied
        if p <= 0:
            return x
        prob = tf.random.uniform([], minval=0, maxval=1, dtype=tf.float32)
        for i in range(len(funcs)):
            if prob <= float(i + 1) * p / float(len(funcs)):
                x = funcs[i](x)
        return x

    class OneOf:
        def __init__(self, funcs, p=1.0):
            self.funcs, self.p = funcs, p

        def __call__(self, x):
            return oneof(self.funcs, x, self.p)

    def get_shape(x, dim=None):
        if dim is None:
            return x.get_shape().as_list()
        return x.get_shape()[dim] or tf.shape(x)[dim]

    for k, v in dict(apply=apply, Apply=Apply, oneof=oneof, OneOf=OneOf, get_shape=get_shape).items():
        setattr(melt, k, v)

    src = types.ModuleType("src")
    src.__path__ = []
    config = types.ModuleType("src.config")
    consts = dict(FLAGS=final_flags(root), N_COLS=N_COLS, N_HAND_POINTS=21, N_POSE_POINTS=5, N_LIP_POINTS=18,
                  N_EYE_POINTS=16, N_NOSE_POINTS=1, N_MID_POINTS=6, MAX_PHRASE_LEN=32)
    for k, v in consts.items():
        setattr(config, k, v)

    def get_n_cols(no_motion=False, use_z=None):
        # config.get_n_cols for the final flags: raw + normalized (+ pos)
        return N_COLS * 2 + 1

    config.get_n_cols = get_n_cols
    src.config = config
    src_tf = types.ModuleType("src.tf")
    src_tf.__path__ = [str(ref_src)]
    src.tf = src_tf
    sys.modules.update({"gezi": gezi, "gezi.common": common, "melt": melt, "src": src,
                        "src.config": config, "src.tf": src_tf})


# ---------------------------------------------------------------------------------------------
# recording wrappers

RECORD: list = []
RESIZES: list = []
FORCE: dict = {}
COUNT: dict = {}
RNG: list = [np.random.default_rng(0)]
_uniform = tf.random.uniform
_resize = tf.image.resize


def _site(frame, is_int: bool) -> str:
    """Which reference draw this is, from the Python stack at trace time."""
    f = frame
    while f is not None:
        name = f.f_code.co_name.replace("tf__", "")
        if name == "apply" and "func" in f.f_locals:
            return "gate:" + f.f_locals["func"].__name__
        if name == "oneof":
            return "gate:oneof"
        if name in ("scale", "rotate", "shift"):
            return name
        if name == "temporal_seq_mask":
            return "tsm_offset" if is_int else "tsm_frac"
        if name == "interp1d":
            return "method"
        if name == "resample":
            return "rate"
        if name in ("temporal_mask", "spatio_mask"):
            return name
        f = f.f_back
    return "unknown"


def _record(site, v, lo, hi):
    """Replace TF's value by one from this case's numpy stream (TF's own stream restarts with every
    new dataset, so all cases would draw alike), or by a forced value; record it."""
    k = COUNT.get(site, 0)
    COUNT[site] = k + 1
    val = v.numpy()
    if (site, k) in FORCE:
        val = np.full(val.shape, FORCE[(site, k)], dtype=val.dtype)
    elif np.issubdtype(val.dtype, np.integer):
        val = RNG[0].integers(int(lo.numpy()), int(hi.numpy()), val.shape).astype(val.dtype)
    else:  # as tf.random.uniform computes it: u * (max - min) + min in float32
        lo32, hi32 = np.float32(lo.numpy()), np.float32(hi.numpy())
        val = (RNG[0].random(val.shape, dtype=np.float32) * (hi32 - lo32) + lo32).astype(val.dtype)
    RECORD.append(dict(site=site, low=float(lo.numpy()), high=float(hi.numpy()), shape=tuple(val.shape),
                       is_int=bool(np.issubdtype(val.dtype, np.integer)), value=val))
    return val


@tf.autograph.experimental.do_not_convert
def recording_uniform(shape, minval=0, maxval=None, dtype=tf.float32, seed=None, name=None):
    dtype = tf.as_dtype(dtype)
    site = _site(inspect.currentframe().f_back, dtype.is_integer)
    v = _uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
    lo = tf.cast(minval, tf.float64)
    hi = tf.cast(1 if maxval is None else maxval, tf.float64)
    out = tf.py_function(functools.partial(_record, site), [v, lo, hi], Tout=dtype)
    out.set_shape(v.shape)
    return out


def _record_resize(where, method, y, n_in, size):
    RESIZES.append(dict(where=where, method=method, n_in=int(n_in.numpy()), n_out=int(size.numpy()[1])))
    return y


@tf.autograph.experimental.do_not_convert
def recording_resize(images, size, method="bilinear", **kw):
    where = "resample" if _site(inspect.currentframe().f_back, False) == "method" else "downsample"
    y = _resize(images, size, method=method, **kw)
    n_in = tf.shape(images)[-2]
    out = tf.py_function(functools.partial(_record_resize, where, str(method)),
                         [y, n_in, tf.convert_to_tensor(size)], Tout=y.dtype)
    out.set_shape(y.shape)
    return out


# ---------------------------------------------------------------------------------------------
# synthetic inputs

GROUPS = (21, 21, 5, 5, 18, 18, 16, 16, 1, 1, 6)


def make_stats(rng):
    """Plausible per-column statistics: xy means ~0.5 with std 0.05-0.2, z means ~0 with std 0.02-0.08."""
    means = np.empty(N_COLS, np.float32)
    stds = np.empty(N_COLS, np.float32)
    means[0::3] = rng.uniform(0.35, 0.65, 128)
    means[1::3] = rng.uniform(0.3, 0.7, 128)
    means[2::3] = rng.uniform(-0.08, 0.02, 128)
    stds[0::3] = rng.uniform(0.05, 0.2, 128)
    stds[1::3] = rng.uniform(0.05, 0.2, 128)
    stds[2::3] = rng.uniform(0.02, 0.08, 128)
    stds[5] = 1.0  # std < 1e-6 -> 1 in gen-mean.py: keep one such column
    return means, stds


def make_frames(T, rng, sparse=False, hand_nan=0.35):
    """[T, 384] float32: a slowly moving pose plus jitter, on a 2^-16 grid (2^-12 when sparse, to keep
    the file small); whole-hand NaN frames. sparse: only ~20 points are ever present."""
    base = np.stack([rng.uniform(0.3, 0.7, 128), rng.uniform(0.25, 0.75, 128), rng.uniform(-0.1, 0.05, 128)], -1)
    drift = rng.normal(0, 0.002, (T, 1, 3)).cumsum(0)
    x = base[None] + drift + rng.normal(0, 0.01, (T, 128, 3))
    grid = 4096 if sparse else 65536
    x = (np.round(x * grid) / grid).astype(np.float32)
    if sparse:
        keep = np.zeros(128, bool)
        keep[rng.choice(42, 12, replace=False)] = True  # hand points, both hands mixed
        keep[rng.choice(np.arange(42, 52), 2, replace=False)] = True  # pose
        keep[rng.choice(np.arange(52, 88), 2, replace=False)] = True  # lips
        keep[rng.choice(np.arange(88, 120), 1)] = True  # eyes
        keep[120:122] = True                            # noses
        keep[rng.choice(np.arange(122, 128), 1)] = True  # one mid point
        x[:, ~keep] = np.nan
    x = x.reshape(T, N_COLS)
    lh = rng.random(T) < hand_nan
    rh = rng.random(T) < hand_nan
    x[lh, 0:63] = np.nan
    x[rh, 63:126] = np.nan
    return x


# ---------------------------------------------------------------------------------------------

GATES_ON = {("gate:" + s, 0): 0.0 for s in SITES_GATE}
NO_ROTATE = {**GATES_ON, ("gate:rotate", 0): 0.99}
GATES_OFF = {("gate:" + s, 0): 0.99 for s in SITES_GATE}
METHOD = {
    "bilinear": {("method", 0): 0.1},
    "bicubic": {("method", 0): 0.5, ("method", 1): 0.2},
    "nearest": {("method", 0): 0.5, ("method", 1): 0.7},
}


def force(base=None, method=None, rate=None, **extra):
    f = dict(base or {})
    if method:
        f.update(METHOD[method])
    if rate is not None:
        f[("rate", 0)] = rate
    for k, v in extra.items():
        f[(k, 0)] = v
    return f


def case_list():
    """(T, train, sparse, force, mode, note). Natural cases draw from a per-case numpy stream; forced
    ones pin a few draws. mode: "tf.data" (Dataset.map, as the reference trains) or "tf.function"
    (a direct call of the layer, where grappler folds the constant divisions)."""
    cases = []
    for T in (1, 2, 4, 5):
        for s in range(3):
            cases.append((T, True, False, {}, "tf.data", "natural"))
        cases.append((T, True, False, force(GATES_ON), "tf.data", "all gates on"))
        cases.append((T, True, False, force(NO_ROTATE, "bicubic", 1.45), "tf.data", "bicubic up"))
        cases.append((T, True, False, force(NO_ROTATE, "nearest", 1.45), "tf.data", "nearest up"))
        cases.append((T, True, False, force(NO_ROTATE, "bilinear", 1.45), "tf.data", "bilinear up"))
        cases.append((T, False, False, {}, "tf.data", "inference"))
    for T, sparse in ((20, False), (50, True)):
        for s in range(3):
            cases.append((T, True, sparse, {}, "tf.data", "natural"))
        for m, r in (("bilinear", 0.63), ("bicubic", 0.77), ("nearest", 1.31)):
            cases.append((T, True, sparse, force(NO_ROTATE, m, r), "tf.data", f"{m}, no rotate"))
        cases.append((T, True, sparse, force(GATES_OFF), "tf.data", "all gates off"))
        cases.append((T, False, sparse, {}, "tf.data", "inference"))
    # long ones (sparse columns to keep the file small)
    cases += [
        (319, True, True, force(NO_ROTATE, "bicubic", 1.3), "tf.data", "bicubic up, then downsample"),
        (319, True, True, force(NO_ROTATE, "bilinear", 1.004), "tf.data", "bilinear 319->320"),
        (320, True, True, force(NO_ROTATE, "nearest", 0.9), "tf.data", "nearest down, padded"),
        (321, True, True, force(NO_ROTATE, "bilinear", 0.997), "tf.data", "bilinear 321->320"),
        (321, True, True, force(GATES_ON, "bicubic", 0.55), "tf.data", "all on, bicubic down"),
        (800, True, True, force(NO_ROTATE, "nearest", 0.6), "tf.data", "nearest 800->480->320"),
        (800, True, True, force(GATES_ON, "bicubic", 0.5), "tf.data", "all on, bicubic 800->400->320"),
        (560, True, True, {}, "tf.data", "natural"),
        (320, False, True, {}, "tf.data", "inference"),
        (321, False, True, {}, "tf.data", "inference"),
        # direct tf.function calls
        (5, True, False, force(GATES_ON, "bilinear", 1.2), "tf.function", "all gates on"),
        (20, True, False, {}, "tf.function", "natural"),
        (20, False, False, {}, "tf.function", "inference"),
        (50, False, True, {}, "tf.function", "inference"),
    ]
    return cases


RESIZE_LONG = [(319, 320), (321, 320), (800, 320), (800, 400), (100, 149), (320, 479), (807, 320),
               (7, 7), (2, 3), (3, 2), (1, 9), (9, 1), (640, 320), (333, 500)]


def direct_resizes(rng):
    """tf.image.resize on [1, T, C] (as the pipeline calls it) for each method: a sweep of small
    (T, L) pairs on one channel and some long pairs on 2 channels (unit-variance data)."""
    x = rng.normal(0, 1, (810, 2)).astype(np.float32)
    pairs = [(t, l, 1) for t in range(1, 21) for l in range(1, 21)] + [(t, l, 2) for t, l in RESIZE_LONG]
    rows, ys = [], []
    for method in ("bilinear", "bicubic", "nearest"):
        for t, l, c in pairs:
            y = tf.image.resize(x[None, :t, :c], (1, l), method).numpy().reshape(l, c).astype(np.float32)
            rows.append((method, t, l, c))
            ys.append(y.reshape(-1))
    return x, rows, ys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-src", required=True, type=Path,
                    help="the reference repo's projects/kaggle/aslfr/src/tf directory (augment.py, preprocess.py)")
    ap.add_argument("--out", type=Path, default=HERE / "golden.npz")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    ref_src = args.ref_src.resolve()
    for f in ("augment.py", "preprocess.py"):
        if not (ref_src / f).is_file():
            sys.exit(f"{ref_src / f} not found")

    rng = np.random.default_rng(args.seed)
    tf.random.set_seed(args.seed)
    means, stds = make_stats(rng)
    tmp = tempfile.mkdtemp(prefix="aslfr-golden-")
    np.save(f"{tmp}/means.npy", means)
    np.save(f"{tmp}/stds.npy", stds)

    install_standins(ref_src, tmp)
    tf.random.uniform = recording_uniform
    tf.image.resize = recording_resize
    import src.tf.preprocess as P  # noqa: E402  (the reference's own code)

    layers = {True: P.PreprocessLayer(320, training=True), False: P.PreprocessLayer(320, training=False)}
    inv_stds = tf.math.reciprocal(tf.constant(stds)).numpy()

    frames_all, outs, meta, draws = [], [], [], []
    for i, (T, train, sparse, forced, mode, note) in enumerate(case_list()):
        frames = make_frames(T, rng, sparse=sparse)
        RECORD.clear(); RESIZES.clear(); COUNT.clear(); FORCE.clear(); FORCE.update(forced)
        RNG[0] = np.random.default_rng([args.seed, i])
        if mode == "tf.data":
            ds = tf.data.Dataset.from_tensors(tf.constant(frames)).map(layers[train].call)
            out, n_frames_ = [t.numpy() for t in next(iter(ds))]
        else:
            out, n_frames_ = [t.numpy() for t in layers[train].call(tf.constant(frames))]
        assert out.shape == (320, 769) and out.dtype == np.float32, out.shape
        res = [r for r in RESIZES if r["where"] == "resample"]
        L = res[0]["n_out"] if res else T
        meta.append(dict(T=T, train=train, sparse=sparse, mode=mode, note=note, n_frames_=int(n_frames_), L=L,
                         method=res[0]["method"] if res else "", resizes=list(RESIZES),
                         forced={f"{k[0]}#{k[1]}": v for k, v in forced.items()},
                         sites=[r["site"] for r in RECORD]))
        frames_all.append(frames)
        outs.append(out)
        draws.append(list(RECORD))
        print(f"case {i:2d} T={T:3d} {'train' if train else 'infer'} L={L:3d} n_frames_={int(n_frames_):3d} "
              f"method={meta[-1]['method'] or '-':8s} draws={len(RECORD):2d} {mode:11s} {note}")

    rs_x, rs_rows, rs_ys = direct_resizes(rng)

    # flatten the draws: one row per tf.random.uniform call, values concatenated
    d_case, d_site, d_low, d_high, d_shape, d_int, d_off, vals = [], [], [], [], [], [], [0], []
    for ci, rec in enumerate(draws):
        for r in rec:
            d_case.append(ci); d_site.append(r["site"]); d_low.append(r["low"]); d_high.append(r["high"])
            d_shape.append(json.dumps(list(r["shape"]))); d_int.append(r["is_int"])
            v = np.asarray(r["value"]).reshape(-1).astype(np.float64)
            vals.append(v); d_off.append(d_off[-1] + v.size)
    f_off = np.cumsum([0] + [f.shape[0] for f in frames_all])
    rs_off = np.cumsum([0] + [y.size for y in rs_ys])
    info = dict(
        tensorflow=tf.__version__, numpy=np.__version__, python=platform.python_version(),
        machine=platform.machine(), processor=_cpu_model(),
        reference="chenghuige/Google-American_Sign_Language_Fingerspelling_Recognition projects/kaggle/aslfr/src/tf",
        reference_sha256={f: hashlib.sha256((ref_src / f).read_bytes()).hexdigest() for f in ("augment.py", "preprocess.py")},
        run={"tf.data": "tf.data.Dataset.from_tensors(frames).map(PreprocessLayer(320, training).call)",
             "tf.function": "PreprocessLayer(320, training).call(frames)"},
        seed=args.seed, cases=meta,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        info=np.array(json.dumps(info)),
        means=means, stds=stds, tf_inv_stds=inv_stds.astype(np.float32),
        frames=np.concatenate(frames_all), frames_offset=f_off.astype(np.int64),
        case_T=np.array([m["T"] for m in meta], np.int64),
        case_train=np.array([m["train"] for m in meta], bool),
        case_L=np.array([m["L"] for m in meta], np.int64),
        case_method=np.array([m["method"] for m in meta]),
        case_mode=np.array([m["mode"] for m in meta]),
        case_n_frames_=np.array([m["n_frames_"] for m in meta], np.int64),
        out=np.stack(outs),
        draw_case=np.array(d_case, np.int64), draw_site=np.array(d_site), draw_low=np.array(d_low, np.float64),
        draw_high=np.array(d_high, np.float64), draw_shape=np.array(d_shape), draw_int=np.array(d_int, bool),
        draw_offset=np.array(d_off, np.int64), draw_values=np.concatenate(vals) if vals else np.zeros(0),
        rs_x=rs_x, rs_method=np.array([r[0] for r in rs_rows]), rs_in=np.array([r[1] for r in rs_rows], np.int64),
        rs_out=np.array([r[2] for r in rs_rows], np.int64), rs_channels=np.array([r[3] for r in rs_rows], np.int64),
        rs_y=np.concatenate(rs_ys).astype(np.float32), rs_offset=rs_off.astype(np.int64),
    )
    methods = sorted({m["method"] for m in meta if m["method"]})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(meta)} cases, resample methods {methods}, "
          f"TF {tf.__version__}")


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
