"""A stand-in for the ffmpeg calls of `swapline engine` (`ffmpeg -nostdin -y -loglevel error
-i INPUT OUTPUT.gif|.webp`) for machines without ffmpeg: converts an image with Pillow into
the format the output's extension names. Exits 1 (like ffmpeg) on anything it cannot read."""

import sys

from PIL import Image


def main() -> int:
    args = sys.argv[1:]
    source, output = args[args.index("-i") + 1], args[-1]
    try:
        with Image.open(source) as image:
            image.convert("RGB").save(output, {"gif": "GIF", "webp": "WEBP"}[output.rsplit(".", 1)[-1]])
    except Exception as error:  # noqa: BLE001 - any failure is ffmpeg's exit 1
        print(f"{source}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
