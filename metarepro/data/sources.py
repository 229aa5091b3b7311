"""Where each dataset file comes from, and the digests it must have.

Every file names its upstream location and the digests the suite accepts:
the publisher's own digest where one is published (Omniglot's official zips:
MD5), and the sha256 of the copy verified for this project (the local mirror,
``METAREPRO_MIRROR``). Split files are pinned at the upstream commit their
provenance names (``../shared/data/splits/PROVENANCE.md``).

Archives are extracted under the data root; what is pinned there is the
*content* digest of the extracted tree (sha256 of ``"<sha256>  <path>"``
lines, sorted), which is the same whichever source the archive came from.
Where nobody verified an extracted tree for the project (CIFAR-100, CUB: no
copy on these machines), the archive is checked against its publisher's MD5
and the content digest is recorded on first fetch, then checked by
``metarepro data verify``.

ImageNet-derived sets (mini-/tiered-ImageNet) cannot be downloaded under
ImageNet's terms: their datasets list no file, and ``manual`` says where a
user who has the files puts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset.

    ``mirror_path`` is its path under ``METAREPRO_MIRROR``; ``target`` its
    path under the data root (for an archive: the folder it extracts to);
    ``digests`` the accepted ``"algorithm:hex"`` digests of the file itself;
    ``content_sha256``, for archives, the pinned digest of the extracted tree.
    """

    url: str
    mirror_path: str
    target: str
    digests: tuple[str, ...]
    archive: bool = False
    content_sha256: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """``manual``: for a dataset the suite cannot fetch, where its files go (``files`` is empty)."""

    name: str
    description: str
    files: tuple[SourceFile, ...] = field(default_factory=tuple)
    manual: str = ""


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


PROTONETS = ("jakesnell/prototypical-networks", "c9bb4d258267c11cb6e23f0a19242d24ca98ad8a")
SSL = ("renmengye/few-shot-ssl-public", "4ce8726c036ae2811050e9571e8d2b4b46b2acac")
LSTM = ("twitter/meta-learning-lstm", "0df7fc747a219b7dd04e846d75eb8164483b304b")
TORCHMETA = ("tristandeleu/pytorch-meta", "d55d89ebd47f340180267106bde3e4b723f23762")
CIFARFS = ("ArnoutDevos/maml-cifar-fs", "56b8dfd367d916d1f5b8ec53ae6c9e747232dc71")


def _split(upstream: tuple[str, str], upstream_path: str, local: str, sha256: str) -> SourceFile:
    return SourceFile(url=_raw(*upstream, upstream_path), mirror_path=f"splits/{local}", target=f"splits/{local}",
                      digests=(f"sha256:{sha256}",))


OMNIGLOT = Dataset(
    "omniglot",
    "Omniglot (Lake et al. 2015): 1623 characters x 20 drawers, 105x105 1-bit PNG, background + evaluation sets",
    (
        SourceFile(
            url="https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip",
            mirror_path="omniglot/images_background.zip",
            target="omniglot/images_background",
            digests=("md5:68d2efa1b9178cc56df9314c21c6e718",  # official zip, 9464212 bytes
                     "sha256:40aeb46d4dc1eaf84e5613fa36f9b0d2348478fd6c61356c813608234e38d88a"),  # verified mirror
            archive=True,
            content_sha256="deaa02f758afda524b3a045c7af40311f2d9ded3e2a39f715ece8470d474bc6a",
        ),
        SourceFile(
            url="https://github.com/brendenlake/omniglot/raw/master/python/images_evaluation.zip",
            mirror_path="omniglot/images_evaluation.zip",
            target="omniglot/images_evaluation",
            digests=("md5:6b91aef0f799c5bb55b94e3f2daec811",  # official zip, 6462886 bytes
                     "sha256:6e680d4cdf97e47032881da4cd1e338e22e9029d14809fe37c93eeba963ed2a8"),
            archive=True,
            content_sha256="3d5e035f27423c362bf9a181af649b43cda64c1008f842177ddc5203269c901e",
        ),
    ),
)

_SPLIT_FILES = (
    *(_split(PROTONETS, f"data/omniglot/splits/vinyals/{s}.txt", f"omniglot/vinyals/{s}.txt", h) for s, h in (
        ("train", "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0"),
        ("val", "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a"),
        ("test", "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204"),
        ("trainval", "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a"))),
    *(_split(SSL, f"fewshot/data/omniglot_split/{s}.txt", f"omniglot/vinyals_norot/{s}.txt", h) for s, h in (
        ("train", "f1e315f01181be51e580916aaa88d433b1bc7ac5717bd0cfff25c4e0079d39ef"),
        ("val", "fd4ebcb4c93cf8eb64a6d45dbbd6beaac7aacc5030e84a42eba1e47b3a723eba"),
        ("test", "8036c63ee248bc3ac702d7e4ccf0de9be3472001de0206866a808a336991cbfd"),
        ("trainval", "d5760eca6ebaa827c8ca52401274871afe075e5c4a610ef305ecab8515ec1753"))),
    *(_split(LSTM, f"data/miniImagenet/{s}.csv", f"mini_imagenet/ravi/{s}.csv", h) for s, h in (
        ("train", "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f"),
        ("val", "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9"),
        ("test", "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa"))),
    *(_split(SSL, f"fewshot/data/mini_imagenet_split/Vinyals/{s}.csv", f"mini_imagenet/vinyals/{s}.csv", h) for s, h in (
        ("train", "3187401a00bb90b31ff73233cac3307928144a4f669dd17f73c46edc4d05f743"),
        ("val", "ef57c30b733bc447068db5cac5685345a39fc77d2bcbb52502e86fdc6053362e"),
        ("test", "2c8fd2dbe06aa62551e5ec38c58ef715d9264357a179f1aad8705016c8dee163"),
        ("trainval", "71e122a84118d1b0c291abb0bb5608794f119bad2c91c0dd32d5d2c000aa50a3"))),
    *(_split(SSL, f"fewshot/data/tiered_imagenet_split/{s}", f"tiered_imagenet/{s}", h) for s, h in (
        ("train.csv", "6b87c8440f610d406bce85ac70db018485cc1b036a9106d512e75e4988eb3e15"),
        ("val.csv", "e63540c17e82c2de98df9244b03cdb7e214ea513ae543d6dbc29998f9597cfc5"),
        ("test.csv", "a478b4481aae4003b6b3c7a09f9ddc56b36f54652e01b83d07a8e6ee1b789d56"),
        ("trainval.csv", "c4ae54a69d402603653b0a9117198da6498c072705c5ba27715a58861dce78c9"),
        ("old_train.csv", "c4ae54a69d402603653b0a9117198da6498c072705c5ba27715a58861dce78c9"),
        ("old_test.csv", "a478b4481aae4003b6b3c7a09f9ddc56b36f54652e01b83d07a8e6ee1b789d56"),
        ("words.txt", "55df3c6ee75859de344e2834ef65d88d61cec389d57e787be59e942c9b73e9aa"))),
    *(_split(CIFARFS, f"data/CIFARFS/cifar-fs-splits/{s}.txt", f"cifar_fs/bertinetto/{s}.txt", h) for s, h in (
        ("train", "08d41acf21db7203341442e96b2226276217e379bbf809af34849506af1a8c5e"),
        ("val", "e9ca1bb0404d6f804eb4df42923187eb07052a0c2f87820342b0da1f8c940278"),
        ("test", "3720c9d858fa547dbf71ca80ede1f94a803279cfdedd3f7a9b9d3beb4ce5c020"))),
    *(_split(TORCHMETA, f"torchmeta/datasets/assets/cifar100/cifar-fs/{s}.json", f"cifar_fs/torchmeta/{s}.json", h) for s, h in (
        ("train", "e0feef3aef13fc7320d5deef5ae77d91edd28041d9a173939ec48cea68135ef0"),
        ("val", "d9d6e267b5dad5c2267ff7dd98ebb18bb016f7929b56839422bb34fb53bcb3ef"),
        ("test", "e199c74ef4f014ea3f74da1b6cf74795d32747183426c2a7e6ee4308d3bf47e3"))),
    *(_split(TORCHMETA, f"torchmeta/datasets/assets/cifar100/fc100/{s}.json", f"fc100/{s}.json", h) for s, h in (
        ("train", "a19e219adef452c071eb09d14758a9c45562643b9aafa38826e679ed285e117b"),
        ("val", "6d228dac7040959f0c2f0385c53c2cd9a5369ba9eefd1b7cdceecb47041598c4"),
        ("test", "d2cf86db6ec0250993b18cb78ebde10758f06eaaaff1611390e4442ee7c6fc41"))),
    *(_split(TORCHMETA, f"torchmeta/datasets/assets/cub/{s}.json", f"cub/torchmeta/{s}.json", h) for s, h in (
        ("train", "ec90b228abb6100266ec7efd5513ec62d42c2507ccb366f25c42debfd2b5da2e"),
        ("val", "fff92a7293e7e529185a3d2be7d6ec3956fafe916996668384d7bc5d798b8903"),
        ("test", "41c79218a7bd4c2f805623e52e4fa9653e28e063638e8121efcd81183cf7ecc5"))),
)

SPLITS = Dataset("splits", "Standard few-shot class splits, as published by their authors (PROVENANCE.md)", _SPLIT_FILES)

RECORDED = "content digest recorded on first fetch (no verified copy to pin it from)"

CIFAR100 = Dataset(
    "cifar100",
    "CIFAR-100 python version (Krizhevsky 2009): 100 classes x 600 32x32 RGB; CIFAR-FS and FC100 take class splits of it",
    (
        SourceFile(
            url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            mirror_path="cifar100/cifar-100-python.tar.gz",
            target="cifar100/cifar-100-python",
            digests=("md5:eb9058c3a382ffc7106e4002c42a8d85",),  # published on https://www.cs.toronto.edu/~kriz/cifar.html
            archive=True,
            note=RECORDED,
        ),
    ),
)

CUB = Dataset(
    "cub",
    "CUB-200-2011 (Wah et al. 2011): 200 bird species, 11,788 JPEGs; few-shot class split of Chen et al. 2019",
    (
        SourceFile(
            url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
            mirror_path="cub/CUB_200_2011.tgz",
            target="cub/CUB_200_2011",
            # the MD5 every torchvision-style CUB loader checks (e.g. TDeVries/cub2011_dataset, avalanche's CUB200)
            digests=("md5:97eceeb196236b17998738112f37df78",),
            archive=True,
            note=RECORDED,
        ),
    ),
)

MINI_IMAGENET = Dataset(
    "mini_imagenet",
    "mini-ImageNet (Vinyals et al. 2016, Ravi & Larochelle split): 100 ImageNet classes x 600, 84x84 RGB",
    manual=("ImageNet-derived, not downloadable by the suite: put Ravi & Larochelle's images/ folder "
            "(n0153282900000005.jpg, ...) or mini-imagenet-cache-{train,val,test}.pkl into <data root>/mini_imagenet/; "
            "the csv split files come with `metarepro data fetch splits`"),
)

TIERED_IMAGENET = Dataset(
    "tiered_imagenet",
    "tiered-ImageNet (Ren et al. 2018): 608 ImageNet classes in 34 categories, 84x84 RGB",
    manual=("ImageNet-derived, not downloadable by the suite: extract Ren et al.'s tiered-imagenet.tar (linked from "
            "renmengye/few-shot-ssl-public) and put {train,val,test}_labels.pkl with {train,val,test}_images_png.pkl "
            "(or {train,val,test}_images.npz) into <data root>/tiered_imagenet/"),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (OMNIGLOT, SPLITS, CIFAR100, CUB, MINI_IMAGENET, TIERED_IMAGENET)}
