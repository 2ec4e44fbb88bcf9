"""Drawing the `synthetic_road` scenes: one road scene per seed, and its tight box.

    render_example(seed, image_size, class_id=None)
        -> {"image": uint8 [S, S, 3], "mask", "present", "bbox": relative (ymin, xmin, ymax, xmax)}
    split_kinds(n, seed) -> the kinds of a split's images (-1: background, else a class id)

Numpy and PIL only (no TensorFlow): the TFDS builder (`locnet_tf.data.builtin.synthetic`)
and the synthetic videos (`synthetic_video`) both draw with it.

What is drawn:

- Classes: a pedestrian (front or side view, standing / walking / running,
  arm and leg angles, clothes colours, optional bag or skirt), a car (side
  view with sedan / hatchback / van / SUV cabins, or front view), a motorcycle
  (side view, two wheels, with or without a rider). Each with random size
  (larger side from 12% to 95% of the frame), aspect jitter, position
  (up to 10% may leave the frame), colour, mirror and tilt (±12°).
- Backgrounds: road scenes (sky, horizon, road with lane marks, grass),
  gradients, smooth-noise textures, grass, brick walls, stripes; lighting
  gradients, optional background blur, and sensor noise over everything.
- Clutter that is none of the classes: blobs, poles, traffic signs, boxes,
  trees, buildings, cones. Some stands in front of the object.
- About a quarter of each split is background (exactly ``round(0.25 * n)``),
  and the rest is split evenly over the three classes.

The box rule: **the box is tight around the object's visible pixels**: the
pixels the object painted, minus those an occluder painted over, inside the
frame. An occluder may hide at most 35% of the object's pixels (one that would
hide more is not drawn), so the object stays recognisable and its visible
extent is its box. Sensor noise is added after the box is taken and does not
move edges; blur is applied to the background only, so object edges stay sharp.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ("pedestrian", "car", "motorcycle")
BACKGROUND_FRACTION = 0.25
MAX_OCCLUDED = 0.35
# Tight boxes are taken from a mask drawn at the image size; objects whose
# visible part is this small or smaller are redrawn (they would be noise).
_MIN_VISIBLE_PIXELS = 12


# ----------------------------------------------------------------------------
# Small drawing helpers. `rng` is a numpy Generator everywhere.


class _Draw(ImageDraw.ImageDraw):
    """`ImageDraw` that accepts boxes with corners in either order.

    Pillow >= 10 rejects `x1 < x0`; at tiny object sizes the proportional
    layouts below can round to such boxes, and an empty shape is what we want.
    """

    @staticmethod
    def _order(xy):
        (x0, y0), (x1, y1) = (xy[0], xy[1]) if len(xy) == 2 else ((xy[0], xy[1]), (xy[2], xy[3]))
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def rectangle(self, xy, *args, **kwargs):
        return super().rectangle(self._order(xy), *args, **kwargs)

    def rounded_rectangle(self, xy, *args, **kwargs):
        return super().rounded_rectangle(self._order(xy), *args, **kwargs)

    def ellipse(self, xy, *args, **kwargs):
        return super().ellipse(self._order(xy), *args, **kwargs)

    def chord(self, xy, *args, **kwargs):
        return super().chord(self._order(xy), *args, **kwargs)


def _rand_colour(rng, lo=0, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=3))


def _vivid_colour(rng):
    # A saturated colour: one channel high, one low, one anywhere.
    c = rng.permutation([rng.integers(170, 256), rng.integers(0, 80), rng.integers(0, 256)])
    return tuple(int(v) for v in c)


def _shade(colour, factor):
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _smooth_noise(rng, size, cells, channels=1):
    # Low-frequency texture: a few random values upsampled bicubically.
    small = rng.random((cells, cells, channels)).astype(np.float32)
    img = Image.fromarray(
        (small * 255).astype(np.uint8).squeeze(-1) if channels == 1 else (small * 255).astype(np.uint8)
    )
    return np.asarray(img.resize((size, size), Image.BICUBIC), np.float32) / 255.0


def _vertical_gradient(size, top, bottom):
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    top = np.asarray(top, np.float32)
    bottom = np.asarray(bottom, np.float32)
    return np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()


# ----------------------------------------------------------------------------
# Backgrounds: numpy, vectorised. Return float32 [S, S, 3] in 0..255.


def _bg_road(rng, s):
    horizon = int(s * rng.uniform(0.2, 0.6))
    sky = _vertical_gradient(s, _rand_colour(rng, 90, 200), _rand_colour(rng, 170, 255))
    sky[..., 2] = np.maximum(sky[..., 2], sky[..., 0])  # keep it bluish
    img = sky
    grass = np.array([rng.integers(30, 90), rng.integers(90, 170), rng.integers(20, 80)], np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    below = yy >= horizon
    # Road: a trapezoid widening towards the bottom, centred somewhere.
    cx = s * rng.uniform(0.3, 0.7)
    depth = np.clip((yy - horizon) / max(s - horizon, 1), 0, 1)
    half = s * (0.05 + depth * rng.uniform(0.5, 1.2))
    road = below & (np.abs(xx - cx) < half)
    tex = _smooth_noise(rng, s, 8)[..., None] * 40 - 20
    img = np.where(below[..., None], grass + tex, img)
    grey = float(rng.integers(60, 150))
    img = np.where(road[..., None], np.array([grey, grey, grey + 5], np.float32) + tex * 0.5, img)
    if rng.random() < 0.7:  # dashed centre line
        dash = (np.abs(xx - cx) < 0.5 + depth * 2) & below & ((yy // max(2, s // 16)) % 2 == 0)
        img = np.where(dash[..., None], np.array([235, 225, 120], np.float32), img)
    return img


def _bg_gradient(rng, s):
    img = _vertical_gradient(s, _rand_colour(rng), _rand_colour(rng))
    if rng.random() < 0.5:
        img = np.transpose(img, (1, 0, 2)).copy()
    return img


def _bg_texture(rng, s):
    base = np.asarray(_rand_colour(rng, 30, 220), np.float32)
    noise = _smooth_noise(rng, s, int(rng.integers(3, 16)), channels=3) - 0.5
    return base + noise * rng.uniform(40, 160)


def _bg_grass(rng, s):
    base = np.array([rng.integers(20, 90), rng.integers(80, 180), rng.integers(10, 70)], np.float32)
    fine = rng.random((s, s, 1)).astype(np.float32) * 50 - 25
    coarse = _smooth_noise(rng, s, 6)[..., None] * 50 - 25
    return base + fine + coarse


def _bg_bricks(rng, s):
    brick = np.asarray(_rand_colour(rng, 80, 200), np.float32)
    mortar = np.asarray(_rand_colour(rng, 150, 230), np.float32)
    bh = int(rng.integers(max(3, s // 24), max(4, s // 8)))
    bw = bh * int(rng.integers(2, 4))
    yy, xx = np.mgrid[0:s, 0:s]
    row = yy // bh
    shifted = xx + (row % 2) * (bw // 2)
    is_mortar = (yy % bh == 0) | (shifted % bw == 0)
    img = np.where(is_mortar[..., None], mortar, brick)
    return img + (_smooth_noise(rng, s, 5)[..., None] * 40 - 20)


def _bg_stripes(rng, s):
    a, b = np.asarray(_rand_colour(rng), np.float32), np.asarray(_rand_colour(rng), np.float32)
    period = rng.uniform(s / 20, s / 4)
    angle = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    t = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) / period * 2 * math.pi) > 0
    return np.where(t[..., None], a, b)


_BACKGROUNDS = (_bg_road, _bg_road, _bg_gradient, _bg_texture, _bg_grass, _bg_bricks, _bg_stripes)


def _lighting(rng, img):
    s = img.shape[0]
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle)
    gain = rng.uniform(0.6, 1.3) + ramp * rng.uniform(0, 0.6)
    return img * gain[..., None]


# ----------------------------------------------------------------------------
# Clutter (none of the classes). Each draws on `draw` in absolute pixels.


def _clutter_blob(draw, rng, s):
    r = rng.uniform(0.04, 0.2) * s
    cx, cy = rng.uniform(0, s, 2)
    e = rng.uniform(0.5, 1.5)
    draw.ellipse([cx - r, cy - r * e, cx + r, cy + r * e], fill=_rand_colour(rng))


def _clutter_pole(draw, rng, s):
    x = rng.uniform(0, s)
    w = max(1.0, rng.uniform(0.01, 0.04) * s)
    top, bottom = rng.uniform(-0.1, 0.5) * s, rng.uniform(0.6, 1.1) * s
    colour = _rand_colour(rng, 60, 200)
    draw.rectangle([x, top, x + w, bottom], fill=colour)
    if rng.random() < 0.5:  # street lamp arm
        arm = x + rng.uniform(0.05, 0.15) * s * rng.choice([-1, 1])
        draw.rectangle([min(x, arm), top, max(x, arm), top + w], fill=colour)


def _clutter_sign(draw, rng, s):
    x, y = rng.uniform(0.05, 0.95) * s, rng.uniform(0.1, 0.7) * s
    r = rng.uniform(0.03, 0.1) * s
    draw.rectangle([x - max(1, r * 0.12), y, x + max(1, r * 0.12), y + r * rng.uniform(2, 5)], fill=(120, 120, 120))
    colour = tuple(int(c) for c in rng.choice([[200, 30, 30], [30, 60, 200], [230, 200, 30], [240, 240, 240]]))
    shape = rng.integers(3)
    if shape == 0:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(255, 255, 255))
    elif shape == 1:
        draw.polygon([(x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8)], fill=colour, outline=(255, 255, 255))
    else:
        draw.rectangle([x - r, y - r * 0.7, x + r, y + r * 0.7], fill=colour)


def _clutter_box(draw, rng, s):
    x, y = rng.uniform(-0.05, 0.9) * s, rng.uniform(0.2, 0.95) * s
    w, h = rng.uniform(0.05, 0.3, 2) * s
    colour = _rand_colour(rng, 40, 230)
    draw.rectangle([x, y, x + w, y + h], fill=colour)
    draw.polygon(
        [(x, y), (x + w * 0.25, y - h * 0.2), (x + w * 1.25, y - h * 0.2), (x + w, y)], fill=_shade(colour, 1.25)
    )


def _clutter_tree(draw, rng, s):
    x, y = rng.uniform(0, s), rng.uniform(0.3, 1.0) * s
    h = rng.uniform(0.15, 0.6) * s
    tw = max(1.0, h * 0.08)
    draw.rectangle([x - tw, y - h * 0.5, x + tw, y], fill=(int(rng.integers(60, 110)), int(rng.integers(40, 70)), 20))
    r = h * rng.uniform(0.25, 0.4)
    green = (int(rng.integers(10, 80)), int(rng.integers(80, 170)), int(rng.integers(10, 70)))
    draw.ellipse([x - r, y - h * 0.5 - r * 1.6, x + r, y - h * 0.5 + r * 0.3], fill=green)


def _clutter_building(draw, rng, s):
    x, w = rng.uniform(-0.1, 0.9) * s, rng.uniform(0.15, 0.4) * s
    top, bottom = rng.uniform(0.0, 0.4) * s, rng.uniform(0.4, 0.7) * s
    colour = _rand_colour(rng, 80, 220)
    draw.rectangle([x, top, x + w, bottom], fill=colour)
    win = _shade(colour, rng.uniform(0.3, 0.6))
    step = max(4.0, w / 4)
    for wy in np.arange(top + step * 0.3, bottom - step * 0.5, step):
        for wx in np.arange(x + step * 0.3, x + w - step * 0.5, step):
            draw.rectangle([wx, wy, wx + step * 0.4, wy + step * 0.4], fill=win)


def _clutter_cone(draw, rng, s):
    x, y = rng.uniform(0, s), rng.uniform(0.4, 1.0) * s
    h = rng.uniform(0.05, 0.15) * s
    draw.polygon([(x, y - h), (x + h * 0.4, y), (x - h * 0.4, y)], fill=(240, 110, 20))
    draw.rectangle([x - h * 0.2, y - h * 0.55, x + h * 0.2, y - h * 0.45], fill=(250, 250, 250))


_CLUTTER = (_clutter_blob, _clutter_pole, _clutter_sign, _clutter_box, _clutter_tree, _clutter_building, _clutter_cone)


# ----------------------------------------------------------------------------
# The three classes. Each draws into a local RGBA canvas of size (w, h) and
# uses the whole canvas height/width as its extent, so the canvas is the
# object's layout box before mirroring and tilting.


def _limb(draw, p0, angle, length, width, colour):
    # angle 0 points straight down; positive swings forward (to +x).
    p1 = (p0[0] + length * math.sin(angle), p0[1] + length * math.cos(angle))
    draw.line([p0, p1], fill=colour, width=max(1, int(round(width))))
    return p1


def _draw_pedestrian(rng, w, h):
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = _Draw(canvas)
    skin = tuple(int(v) for v in rng.choice([[250, 215, 180], [210, 160, 120], [140, 95, 60], [90, 60, 40]]))
    shirt, trousers = _rand_colour(rng), _rand_colour(rng, 0, 200)
    pose = rng.choice(["stand", "walk", "run"])
    side = rng.random() < 0.6
    head_r = h * 0.075
    cx = w / 2
    lean = {"stand": 0.0, "walk": 0.05, "run": 0.15}[pose] * h if side else 0.0
    neck = (cx + lean * 0.5, head_r * 2.0)
    hip = (cx, h * 0.52)
    limb_w = max(1.5, w * 0.16)
    leg_len = (h - hip[1]) / 2 - limb_w * 0.3
    stride = {"stand": 0.05, "walk": 0.35, "run": 0.6}[pose] * rng.uniform(0.7, 1.2)
    if side:
        angles = [stride, -stride]
    else:
        angles = [0.12, -0.12]
    for k, a in enumerate(angles):
        start = (hip[0] + (0 if side else (k - 0.5) * w * 0.25), hip[1])
        knee = _limb(d, start, a, leg_len, limb_w, trousers)
        bend = -abs(a) * rng.uniform(0.3, 1.0) if side else 0.0
        foot = _limb(d, knee, a + bend, leg_len, limb_w, trousers)
        if side:
            d.line([foot, (foot[0] + w * 0.15, foot[1])], fill=(30, 30, 30), width=max(1, int(limb_w * 0.7)))
    # Torso, optionally with a skirt or coat flaring to the hips.
    top_w = w * (0.28 if side else 0.55)
    flare = rng.random() < 0.25
    bottom_w = top_w * (1.6 if flare else 0.9)
    d.polygon(
        [
            (neck[0] - top_w / 2, neck[1]),
            (neck[0] + top_w / 2, neck[1]),
            (hip[0] + bottom_w / 2, hip[1] + (h * 0.1 if flare else 0)),
            (hip[0] - bottom_w / 2, hip[1] + (h * 0.1 if flare else 0)),
        ],
        fill=shirt,
    )
    arm_len = h * 0.17
    arm_angles = [-angles[0] * 1.2, -angles[1] * 1.2] if side else [0.35, -0.35]
    for k, a in enumerate(arm_angles):
        shoulder = (neck[0] + (0 if side else (k - 0.5) * top_w * 0.9), neck[1] + h * 0.02)
        elbow = _limb(d, shoulder, a, arm_len, limb_w * 0.8, shirt)
        _limb(d, elbow, a + (0.6 if pose == "run" else 0.2), arm_len * 0.9, limb_w * 0.7, skin)
    if rng.random() < 0.3:  # bag
        bx = neck[0] + top_w * 0.4
        d.rectangle([bx, h * 0.35, bx + w * 0.2, h * 0.5], fill=_rand_colour(rng, 0, 120))
    hc = (neck[0] + lean * 0.3, head_r * 1.05)
    d.ellipse([hc[0] - head_r, hc[1] - head_r, hc[0] + head_r, hc[1] + head_r], fill=skin)
    if rng.random() < 0.7:  # hair or hat
        d.chord(
            [hc[0] - head_r, hc[1] - head_r, hc[0] + head_r, hc[1] + head_r], 180, 360, fill=_rand_colour(rng, 0, 120)
        )
    return canvas


def _wheel(d, cx, cy, r, rim=(170, 170, 170)):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(25, 25, 25))
    d.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=rim)
    d.ellipse([cx - r * 0.15, cy - r * 0.15, cx + r * 0.15, cy + r * 0.15], fill=(60, 60, 60))


def _draw_car(rng, w, h, front):
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = _Draw(canvas)
    body = _vivid_colour(rng) if rng.random() < 0.6 else _rand_colour(rng, 20, 240)
    glass = (int(rng.integers(60, 140)), int(rng.integers(100, 170)), int(rng.integers(150, 220)))
    if front:
        belt = h * rng.uniform(0.42, 0.55)
        tyre_w = w * 0.14
        d.rectangle([w * 0.06, h * 0.8, w * 0.06 + tyre_w, h - 1], fill=(25, 25, 25))
        d.rectangle([w * 0.94 - tyre_w, h * 0.8, w * 0.94, h - 1], fill=(25, 25, 25))
        d.rounded_rectangle([0, belt, w - 1, h * 0.9], radius=max(1, int(h * 0.08)), fill=body)
        d.polygon([(w * 0.15, belt), (w * 0.85, belt), (w * 0.75, 0), (w * 0.25, 0)], fill=_shade(body, 0.9))
        d.polygon(
            [(w * 0.2, belt - h * 0.03), (w * 0.8, belt - h * 0.03), (w * 0.72, h * 0.06), (w * 0.28, h * 0.06)],
            fill=glass,
        )
        lamp = (250, 250, 210)
        lr = h * 0.07
        for lx in (w * 0.14, w * 0.86):
            d.ellipse([lx - lr * 1.4, belt + h * 0.1, lx + lr * 1.4, belt + h * 0.1 + lr * 2], fill=lamp)
        d.rectangle([w * 0.32, belt + h * 0.12, w * 0.68, belt + h * 0.25], fill=_shade(body, 0.4))
        d.rectangle([w * 0.35, h * 0.74, w * 0.65, h * 0.82], fill=(230, 230, 230))
        return canvas
    style = rng.choice(["sedan", "hatch", "van", "suv"])
    r = h * 0.22
    belt = h * {"sedan": 0.45, "hatch": 0.45, "van": 0.3, "suv": 0.4}[style]
    d.rounded_rectangle([0, belt, w - 1, h - r * 0.9], radius=max(1, int(h * 0.1)), fill=body)
    # Cabin: (rear-top x, front-top x, rear-bottom x, front-bottom x) as fractions of w.
    xs = {
        "sedan": (0.28, 0.62, 0.15, 0.78),
        "hatch": (0.15, 0.6, 0.08, 0.75),
        "van": (0.03, 0.8, 0.02, 0.95),
        "suv": (0.08, 0.7, 0.05, 0.82),
    }[style]
    jitter = rng.uniform(-0.04, 0.04, 4)
    a, b, c, e = [(v + j) * w for v, j in zip(xs, jitter)]
    d.polygon([(c, belt), (a, 0), (b, 0), (e, belt)], fill=body)
    inset = h * 0.06
    mid = (a + b) / 2
    d.polygon(
        [(c + inset * 1.5, belt), (a + inset, inset), (mid - inset * 0.3, inset), (mid - inset * 0.3, belt)], fill=glass
    )
    d.polygon(
        [(mid + inset * 0.3, belt), (mid + inset * 0.3, inset), (b - inset, inset), (e - inset * 1.5, belt)], fill=glass
    )
    d.rectangle([w - w * 0.04, belt + h * 0.06, w - 1, belt + h * 0.14], fill=(250, 240, 180))
    d.rectangle([0, belt + h * 0.06, w * 0.03, belt + h * 0.14], fill=(200, 30, 30))
    for wx in (w * rng.uniform(0.17, 0.24), w * rng.uniform(0.76, 0.83)):
        _wheel(d, wx, h - r - 1, r)
    return canvas


def _draw_motorcycle(rng, w, h, rider):
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = _Draw(canvas)
    body = _vivid_colour(rng)
    metal = (int(rng.integers(140, 200)),) * 3
    r = min(w * 0.16, h * (0.2 if rider else 0.32))
    wy = h - r - 1
    rear, front = (r + 1, wy), (w - r - 2, wy)
    line_w = max(1, int(r * 0.25))
    seat_y = wy - r * 1.5
    tank = (w * 0.42, seat_y - r * 0.1)
    # Frame: rear axle -> seat -> steering head -> front axle, plus the engine block.
    head = (w * 0.72, seat_y - r * 0.5)
    d.line([rear, (w * 0.35, seat_y), head, front], fill=metal, width=line_w)
    d.line([rear, (w * 0.5, wy - r * 0.2), head], fill=metal, width=line_w)
    d.rectangle([w * 0.4, wy - r * 0.7, w * 0.58, wy - r * 0.05], fill=(70, 70, 70))
    d.line([(w * 0.45, wy - r * 0.1), (w * 0.12, wy - r * 0.3)], fill=(200, 200, 200), width=max(1, line_w))
    d.ellipse([tank[0] - r * 0.2, tank[1] - r * 0.4, tank[0] + r * 1.1, tank[1] + r * 0.45], fill=body)
    d.rectangle([w * 0.2, seat_y - r * 0.2, tank[0], seat_y + r * 0.15], fill=(30, 30, 30))
    d.line([head, (head[0] - r * 0.3, head[1] - r * 0.6)], fill=(40, 40, 40), width=line_w)
    d.ellipse([head[0], head[1] - r * 0.25, head[0] + r * 0.4, head[1] + r * 0.2], fill=(250, 240, 170))
    _wheel(d, *rear, r, rim=metal)
    _wheel(d, *front, r, rim=metal)
    if rider:
        jacket = _rand_colour(rng)
        hip = (w * 0.33, seat_y - r * 0.2)
        shoulder = (w * 0.47, h * 0.2)
        lw = max(2, int(r * 0.45))
        d.line([hip, shoulder], fill=jacket, width=lw)
        d.line(
            [hip, (w * 0.48, wy - r * 0.6), (w * 0.44, wy)], fill=_rand_colour(rng, 0, 120), width=max(1, int(lw * 0.8))
        )
        d.line(
            [shoulder, (w * 0.6, h * 0.33), (head[0] - r * 0.3, head[1] - r * 0.6)],
            fill=jacket,
            width=max(1, int(lw * 0.7)),
        )
        hr = h * 0.1
        hc = (shoulder[0] + hr * 0.3, hr)
        d.ellipse([hc[0] - hr, 0, hc[0] + hr, hr * 2], fill=_vivid_colour(rng))
        d.rectangle([hc[0], hr * 0.6, hc[0] + hr, hr * 1.1], fill=(40, 40, 60))
    return canvas


def _draw_object(rng, class_id, s):
    """Draws one object; returns its RGBA canvas (cropped to its own pixels)."""
    size = rng.uniform(0.12, 0.95) * s  # larger side of the layout box
    if class_id == 0:
        aspect = rng.uniform(0.3, 0.5)  # width / height
        h = size
        w = h * aspect
        canvas = _draw_pedestrian(rng, max(3, int(w)), max(8, int(h)))
    elif class_id == 1:
        front = rng.random() < 0.3
        aspect = rng.uniform(1.1, 1.5) if front else rng.uniform(1.9, 2.8)
        w = size
        h = w / aspect
        canvas = _draw_car(rng, max(8, int(w)), max(4, int(h)), front)
    else:
        rider = rng.random() < 0.6
        aspect = rng.uniform(1.2, 1.6) if rider else rng.uniform(1.5, 2.0)
        w = size
        h = w / aspect
        canvas = _draw_motorcycle(rng, max(8, int(w)), max(5, int(h)), rider)
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        # NEAREST keeps the alpha channel a hard mask, so the box stays exact.
        canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.NEAREST, expand=True)
    bbox = canvas.getchannel("A").getbbox()
    return canvas.crop(bbox) if bbox else canvas


# ----------------------------------------------------------------------------
# One image.


def render_example(seed, image_size, class_id=None):
    """Draws one image from a seed.

    Args:
        seed: int or sequence of ints. Seeds `numpy.random.default_rng`; the
            same seed always gives the same image.
        image_size: int. Side of the square image in pixels.
        class_id: int or None. The class to draw (index into `CLASS_NAMES`),
            or None for a background image.

    Returns:
        A dict with `"image"` (uint8 `[S, S, 3]`), `"mask"` (bool `[S, S]`: the
        object's visible pixels; all False for background), `"present"` (bool)
        and `"bbox"` (relative `(ymin, xmin, ymax, xmax)` tight around `mask`,
        or the dummy `(0, 0, 1, 1)` for background).
    """
    rng = np.random.default_rng(seed)
    s = int(image_size)
    bg = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))](rng, s)
    if rng.random() < 0.3:
        bg = np.asarray(
            Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))
            ),
            np.float32,
        )
    bg = _lighting(rng, bg)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = _Draw(img)
    for _ in range(rng.integers(0, 5)):
        _CLUTTER[rng.integers(len(_CLUTTER))](draw, rng, s)

    mask = np.zeros((s, s), bool)
    if class_id is not None:
        for _attempt in range(10):
            canvas = _draw_object(rng, int(class_id), s)
            cw, ch = canvas.size
            # Up to 10% of the object may leave the frame on each side.
            x0 = int(rng.uniform(-0.1 * cw, s - 0.9 * cw)) if cw < s else int(rng.uniform(s - cw, 0))
            y0 = int(rng.uniform(-0.1 * ch, s - 0.9 * ch)) if ch < s else int(rng.uniform(s - ch, 0))
            layer = Image.new("L", (s, s), 0)
            layer.paste(canvas.getchannel("A"), (x0, y0))
            mask = np.asarray(layer) > 0
            if mask.sum() >= _MIN_VISIBLE_PIXELS:
                break
        img.paste(canvas, (x0, y0), canvas)

    # Clutter in front. For objects, occluders obey MAX_OCCLUDED.
    n_front = rng.integers(0, 3) if rng.random() < 0.4 else 0
    for _ in range(n_front):
        layer = Image.new("RGBA", (s, s), (0, 0, 0, 0))
        _CLUTTER[rng.integers(len(_CLUTTER))](_Draw(layer), rng, s)
        occ = np.asarray(layer.getchannel("A")) > 0
        if class_id is not None:
            visible = mask & ~occ
            if visible.sum() < (1 - MAX_OCCLUDED) * mask.sum() or visible.sum() < _MIN_VISIBLE_PIXELS:
                continue
            mask = visible
        img.paste(layer, (0, 0), layer)

    out = np.asarray(img, np.float32)
    out = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(0, 8))
    image = np.clip(np.round(out), 0, 255).astype(np.uint8)

    if class_id is None:
        return {"image": image, "mask": mask, "present": False, "bbox": (0.0, 0.0, 1.0, 1.0)}
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Pixel i covers [i, i + 1) in pixel units, hence the +1 on the far edges.
    bbox = (rows[0] / s, cols[0] / s, (rows[-1] + 1) / s, (cols[-1] + 1) / s)
    return {"image": image, "mask": mask, "present": True, "bbox": bbox}


def split_kinds(n, seed):
    """The kinds of the `n` images of a split: -1 for background, else a class id.

    Exactly `round(0.25 * n)` are background and the rest are as even as
    possible over the classes, in an order shuffled by `seed`.
    """
    n_bg = int(round(BACKGROUND_FRACTION * n))
    kinds = [-1] * n_bg + [i % len(CLASS_NAMES) for i in range(n - n_bg)]
    return np.random.default_rng(seed).permutation(np.asarray(kinds, np.int64))
