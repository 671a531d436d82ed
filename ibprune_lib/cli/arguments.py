"""The command line's shared flags and their parsing: one-line errors that name the flag and the fix."""

from __future__ import annotations

import argparse

def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, choices=("cifar10", "cifar100"), help="default: cifar10")
    parser.add_argument("--data", default=None, help="CIFAR's folder (default: $IBPRUNE_DATA or data/)")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR if missing")
    parser.add_argument("--data-folder", default=None, metavar="PATH",
                        help="your own images instead of CIFAR: PATH/train/<class>/* and PATH/val/<class>/* "
                             "(torchvision's ImageFolder layout), read into memory")
    parser.add_argument("--image-size", type=int, default=None, metavar="N",
                        help="with --data-folder: resize and centre-crop every image to N×N (default: keep the "
                             "files' size, which must then be square and common; with --stream, 224)")
    parser.add_argument("--stream", action="store_true",
                        help="with --data-folder: read the images as they are used, by DataLoader workers with "
                             "ImageNet's augmentation, instead of into memory (ImageNet-sized folders; torchrun)")
    parser.add_argument("--normalization", type=normalization, default=None,
                        help="input normalisation: imagenet (default; the zoo's and torchvision's), cifar, or "
                             "MEAN,MEAN,MEAN/STD,STD,STD in [0, 1] units")


def normalization(text: str) -> str | tuple:
    """``--normalization``: a name of ``data.NORMALIZATIONS`` or ``m,m,m/s,s,s``."""
    from ..data import NORMALIZATIONS, mean_std_for

    if text in NORMALIZATIONS:
        return text
    try:
        return mean_std_for(tuple(tuple(float(v) for v in part.split(",")) for part in text.split("/")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose {', '.join(NORMALIZATIONS)} or MEAN,MEAN,MEAN/STD,STD,STD (e.g. 0.5,0.5,0.5/0.2,0.2,0.2)"
        ) from None


def model_name(text: str) -> str:
    """``--model``: a zoo name, ``torchvision:NAME`` or ``package.module:factory`` that imports."""
    from ..models import MODEL_NAMES, is_model_name, model_factory

    if not is_model_name(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose one of {', '.join(MODEL_NAMES)}, torchvision:NAME or package.module:factory"
        )
    if ":" in text:
        try:
            model_factory(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return text


def threads(text: str) -> int:
    """``--threads``: an int >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give the number of torch threads, an int >= 1")
    return int(text)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): the message, and where the help is."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


MODEL_HELP = "a zoo name ({}), torchvision:NAME (e.g. torchvision:resnet18) or package.module:factory"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (when writing to a log file)")


def load_data(args):
    """The dataset the flags name: ``--data-folder``'s images (in memory, or streamed with ``--stream``), or CIFAR."""
    from ..data import load_cifar
    from ..image_folders import load_image_folder

    from ..streaming import open_stream

    if args.data_folder is not None:
        if args.dataset is not None or args.data is not None or args.download:
            raise ValueError("--data-folder replaces CIFAR: drop --dataset, --data and --download")
        if args.stream:
            return open_stream(args.data_folder, args.image_size or 224)
        return load_image_folder(args.data_folder, args.image_size, progress=args.progress)
    if args.stream:
        raise ValueError("--stream reads a --data-folder as it is used; CIFAR is held in memory: drop --stream")
    if args.image_size is not None:
        raise ValueError("--image-size applies to --data-folder images; CIFAR's are 32×32: drop it")
    return load_cifar(args.dataset or "cifar10", args.data, args.download)


def check_at_least(*checks: tuple[str, int | None, int]) -> None:
    """Raise a one-line error for the first (flag, value, lowest) whose given value is below its lowest."""
    for flag, value, low in checks:
        if value is not None and value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
