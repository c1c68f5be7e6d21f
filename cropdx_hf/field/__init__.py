"""Field-style photos from lab photos: leaf masks, backgrounds, composites and the field-proxy set.

PlantVillage leaves lie alone, centred, on plain paper under even light; a farmer's photo has soil, hands,
other leaves and sun. Models trained on the lab photos read the paper (Noyan 2022) and fall to ~30 % in the
field. Cutting each leaf out and pasting it into varied scenes (Ghiasi et al. 2021, copy-paste; Tobin et al.
2017, domain randomisation) takes that shortcut away.
"""
