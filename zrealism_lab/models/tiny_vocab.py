"""A small built-in English corpus for the tiny bundle's tokenizer.

The tiny text encoder needs a tokenizer whose merges know the words this product's prompts use; with
bytes alone every character is a token and ordinary prompts overflow CLIP's 77-token window. The lines
below are prompt-like phrases about photography, lighting, characters, clothing and image quality;
repeating words across lines gives the BPE trainer realistic frequencies to rank its merges by.
"""
from __future__ import annotations

CORPUS_LINES: tuple[str, ...] = (
    # Realism and photography
    "photorealistic portrait, cinematic lighting, detailed skin",
    "photorealistic photo of a person, realistic skin texture, natural skin pores",
    "live action adaptation, real person, realistic face, realistic eyes, realistic hair",
    "raw photo, dslr, 35mm film grain, sharp focus, high detail, professional photography",
    "studio portrait photography, soft box lighting, rim light, key light, fill light",
    "full body shot, medium shot, close up, extreme close up, wide angle, telephoto lens",
    "85mm lens, 50mm lens, 24mm lens, shallow depth of field, bokeh, background blur",
    "canon, nikon, sony, fujifilm, leica, hasselblad, medium format camera",
    "kodak portra 400, ektar, fuji film stock, analog photograph, film photography",
    "f/1.4 aperture, f/2.8, iso 100, fast shutter speed, long exposure, high dynamic range",
    "golden hour, blue hour, overcast daylight, harsh midday sun, moonlight, candle light",
    "volumetric light, god rays, dramatic shadows, low key, high key, chiaroscuro",
    "neon lights, city lights at night, street lamps, reflections on wet pavement",
    "backlit, silhouette, lens flare, subsurface scattering, specular highlights",
    "color grading, teal and orange, warm tones, cool tones, muted colors, vivid colors",
    "editorial photo, fashion photography, magazine cover, movie still, film still",
    "documentary photo, candid shot, street photography, behind the scenes photo",
    "hyperrealistic, ultra realistic, lifelike, photograph, 8k uhd, 4k, high resolution",
    "masterpiece, best quality, highly detailed, intricate details, award winning photo",
    "natural lighting, window light, soft light, hard light, diffused light, studio light",
    "cinematic composition, rule of thirds, centered, symmetrical, dutch angle, low angle",
    "high angle, eye level, over the shoulder, profile view, front view, three quarter view",
    # People and faces
    "portrait of a young woman, portrait of a young man, portrait of an old man",
    "a woman with long hair, a man with short hair, a girl, a boy, a child, an adult",
    "beautiful face, handsome face, symmetrical face, detailed face, expressive eyes",
    "blue eyes, green eyes, brown eyes, hazel eyes, grey eyes, red eyes, golden eyes",
    "black hair, blonde hair, brown hair, red hair, white hair, silver hair, pink hair",
    "blue hair, green hair, purple hair, orange hair, twin tails, ponytail, braid, bun",
    "spiky hair, messy hair, curly hair, wavy hair, straight hair, bangs, bob cut",
    "freckles, wrinkles, scars, tattoos, makeup, lipstick, eyeliner, blush, beard",
    "smiling, serious expression, angry, sad, surprised, calm, determined look",
    "looking at the camera, looking away, eyes closed, open mouth, teeth, tongue",
    "pale skin, fair skin, tan skin, dark skin, olive skin, freckled skin, sweat",
    "athletic build, muscular body, slim body, tall, short, strong arms, broad shoulders",
    "hands, fingers, detailed hands, five fingers, arms, legs, feet, neck, chest",
    # Characters and roles
    "martial artist, fighter, warrior, samurai, ninja, knight, soldier, pilot",
    "wizard, witch, mage, priest, princess, prince, king, queen, hero, villain",
    "detective, scientist, doctor, nurse, student, teacher, chef, musician, dancer",
    "superhero, cyborg, android, robot, alien, vampire, elf, demon, angel, pirate",
    "school uniform, sailor uniform, military uniform, business suit, kimono, armor",
    "anime character, manga character, cartoon character, video game character",
    "cosplay, costume, live action remake, realistic version, real life version",
    "fighting stance, martial arts pose, punching, kicking, jumping, running, walking",
    "standing, sitting, kneeling, crouching, leaning, arms crossed, hands on hips",
    "holding a sword, holding a staff, holding a gun, holding a book, holding a cup",
    # Clothing and materials
    "jacket, coat, hoodie, shirt, t-shirt, dress, skirt, pants, jeans, shorts",
    "boots, sneakers, gloves, scarf, hat, cap, helmet, mask, glasses, earrings",
    "necklace, ring, bracelet, belt, cape, cloak, robe, vest, tie, bow, ribbon",
    "leather, denim, silk, cotton, wool, velvet, lace, metal, steel, gold, silver",
    "fabric texture, cloth folds, wrinkled fabric, torn clothes, shiny armor",
    # Places and backgrounds
    "simple background, white background, black background, grey background",
    "transparent background, plain background, gradient background, studio backdrop",
    "city street, alley, rooftop, forest, mountain, beach, ocean, desert, snow",
    "temple, castle, village, classroom, bedroom, kitchen, library, office, cafe",
    "dojo, training hall, arena, battlefield, ruins, bridge, river, lake, garden",
    "sky, clouds, sunset, sunrise, night sky, stars, rain, fog, mist, storm",
    "cherry blossoms, autumn leaves, grass field, flowers, trees, waterfall",
    # Colours and shapes
    "red, orange, yellow, green, cyan, blue, purple, magenta, pink, brown",
    "black, white, grey, gold, silver, crimson, navy, teal, beige, pastel",
    "bright, dark, light, saturated, desaturated, monochrome, sepia, vibrant",
    "round, square, sharp edges, smooth, rough, glossy, matte, transparent",
    # Negative prompt vocabulary
    "lowres, low quality, worst quality, normal quality, jpeg artifacts, blurry",
    "bad anatomy, bad hands, missing fingers, extra fingers, extra limbs, fused fingers",
    "deformed, disfigured, mutated, ugly, duplicate, cropped, out of frame",
    "watermark, signature, text, logo, username, error, noise, grainy",
    "cartoon, anime, drawing, painting, illustration, sketch, 3d render, cgi, doll",
    "plastic skin, airbrushed, oversaturated, overexposed, underexposed, flat lighting",
    "cel shading, flat colors, line art, outlines, comic, manga style, chibi",
    # Motion and clips
    "smooth motion, consistent character, stable face, no flicker, natural movement",
    "hair blowing in the wind, turning head, blinking, breathing, slow motion",
    "camera pan, camera zoom, tracking shot, handheld camera, steady shot",
    # Depth, pose and edges (control vocabulary)
    "depth map, pose skeleton, canny edges, lineart, soft edges, segmentation",
    "foreground, background, subject, silhouette mask, outline, contour, shape",
    # Common small words
    "a an the of in on at with and or to from by for under over behind near",
    "is are was be his her their its this that one two three four five six",
    "very more less most no not without wearing holding looking standing",
)


def corpus() -> list[str]:
    """The corpus lines, in a fixed order (the tokenizer build must be reproducible)."""
    return list(CORPUS_LINES)
