# The exit's image, for those who build images themselves. 'fluidity aws
# deploy' builds the same image in-process, without Docker (internal/image):
# a static linux/arm64 binary on an empty base, run as a non-root user; the
# binary carries its own CA roots. The control plane's Lambda function runs
# the same image with the command "lambda".
#
#   docker buildx build --platform linux/arm64 -t fluidity-exit .
#   fluidity aws deploy --image fluidity-exit   (after pushing it somewhere deploy can read it)
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux TARGETARCH=arm64 VERSION=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags lambda.norpc \
    -ldflags "-s -w -X fluidity/internal/cli.version=${VERSION}" -o /out/fluidity ./cmd/fluidity \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/group \
 && mkdir -p /out/home/nonroot /out/tmp && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/passwd /out/group /etc/
COPY --from=build --chown=65532:65532 /out/home /home
COPY --from=build /out/tmp /tmp
COPY --from=build /out/fluidity /fluidity
USER 65532:65532
WORKDIR /home/nonroot
ENV HOME=/home/nonroot
EXPOSE 8443
ENTRYPOINT ["/fluidity"]
CMD ["server"]
