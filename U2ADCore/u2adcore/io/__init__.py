"""Files in and out: images, studies, atomic writes."""
