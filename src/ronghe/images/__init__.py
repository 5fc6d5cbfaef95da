"""The image domain, apart from HTTP: ``submit`` checks a request and makes its typed job
(``job``), which the image task (``ronghe.tasks.images``) renders."""
