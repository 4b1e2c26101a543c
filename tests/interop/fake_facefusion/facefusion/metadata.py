# Read by `swapline engine` for /health's facefusion_version, like FaceFusion's own metadata.py.
METADATA = {
	'name': 'FaceFusion',
	'version': '3.1.1-fake',
}
