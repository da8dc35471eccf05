"""Layer 0, the foundations: label space, seeds, files, manifests, images, face geometry, figures, tables, the strategy contract, guards, the params schema."""
