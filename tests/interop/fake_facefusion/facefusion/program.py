"""The stand-in's argument parser, where FaceFusion 3.x keeps its own (facefusion/program.py):
`swapline engine` reads this file to tell the early 3.x output flags
(`--output-image-resolution`, which this stand-in has) from the later scale flags."""

import argparse

FACE_SWAPPER_SET = {
    'blendswap_256': ['256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'ghost_1_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'ghost_2_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'ghost_3_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hififace_unofficial_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1a_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1b_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1c_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'inswapper_128': ['128x128', '256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'inswapper_128_fp16': ['128x128', '256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'simswap_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'simswap_unofficial_512': ['512x512', '768x768', '1024x1024'],
    'uniface_256': ['256x256', '512x512', '768x768', '1024x1024'],
}
FACE_ENHANCER_MODELS = ['codeformer', 'gfpgan_1.2', 'gfpgan_1.3', 'gfpgan_1.4', 'gpen_bfr_256', 'gpen_bfr_512',
                        'gpen_bfr_1024', 'gpen_bfr_2048', 'restoreformer_plus_plus']
PROCESSORS = ['age_modifier', 'deep_swapper', 'expression_restorer', 'face_debugger', 'face_editor', 'face_enhancer',
              'face_swapper', 'frame_colorizer', 'frame_enhancer', 'lip_syncer']
PIXEL_BOOSTS = sorted({boost for boosts in FACE_SWAPPER_SET.values() for boost in boosts})


def create_program() -> argparse.ArgumentParser:
    program = argparse.ArgumentParser(prog='facefusion.py')
    program.add_argument('-v', '--version', action='version', version='FaceFusion 3.1.1-fake')
    commands = program.add_subparsers(dest='command', required=True)
    run = commands.add_parser('headless-run')
    run.add_argument('-s', '--source-paths', nargs='+', required=True)
    run.add_argument('-t', '--target-path', required=True)
    run.add_argument('-o', '--output-path', required=True)
    run.add_argument('--jobs-path', default='.jobs')
    run.add_argument('--temp-path', default='/tmp')
    run.add_argument('--processors', nargs='+', choices=PROCESSORS, default=['face_swapper'])
    run.add_argument('--face-swapper-model', choices=list(FACE_SWAPPER_SET), default='inswapper_128_fp16')
    run.add_argument('--face-swapper-pixel-boost', choices=PIXEL_BOOSTS)
    run.add_argument('--face-enhancer-model', choices=FACE_ENHANCER_MODELS, default='gfpgan_1.4')
    run.add_argument('--face-enhancer-blend', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--face-selector-mode', choices=['many', 'one', 'reference'], default='reference')
    run.add_argument('--face-detector-model', choices=['many', 'retinaface', 'scrfd', 'yolo_face'], default='yolo_face')
    run.add_argument('--output-image-quality', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--output-image-resolution')
    run.add_argument('--output-video-encoder', choices=['libx264', 'libx265', 'libvpx-vp9', 'h264_nvenc', 'hevc_nvenc'])
    run.add_argument('--output-video-quality', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--output-video-resolution')
    run.add_argument('--execution-providers', nargs='+', default=['cpu'])
    run.add_argument('--log-level', choices=['error', 'warn', 'info', 'debug'], default='info')
    return program
